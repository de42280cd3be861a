"""Redis limiter: one Lua script per operation, so any number of gateway processes share exact limits,
free quotas and balances. Windows come from Redis's own clock (TIME), never from the instances'.

Money fails closed: if Redis cannot be reached, requests that need the balance get a 503 naming the
cause. When Redis comes back empty (restart), each account's balance counter is rebuilt from the
database on first use, marked with a new epoch so that reservations made before the loss are not
refunded into the new counter.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from perilune.errors import ServiceUnavailable
from perilune.limits.base import Ask, BalanceLoader, Settled, Ticket, insufficient, rate_limited

ADMIT = """
local p, key_id, acct = ARGV[1], ARGV[2], ARGV[3]
local krpm, ktpm, arpm, atpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local tokens, cost, quota, fmodel, enforce = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), ARGV[11], ARGV[12]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local day = math.floor(now / 86400)
local retry = string.format('%.3f', 60 - (now % 60))
local kr, kt = p..'r:k:'..key_id..':'..minute, p..'t:k:'..key_id..':'..minute
local ar, at = p..'r:a:'..acct..':'..minute, p..'t:a:'..acct..':'..minute
local function over(name, add, limit)
  if limit < 0 then return false end
  return tonumber(redis.call('GET', name) or '0') + add > limit
end
if key_id ~= '' then
  if over(kr, 1, krpm) then return {'rpm_k', retry} end
  if over(kt, tokens, ktpm) then return {'tpm_k', retry} end
end
if over(ar, 1, arpm) then return {'rpm_a', retry} end
if over(at, tokens, atpm) then return {'tpm_a', retry} end
local free = false
local fk = p..'free:'..acct..':'..fmodel..':'..day
if quota > 0 and tonumber(redis.call('GET', fk) or '0') + tokens <= quota then free = true end
local reserved, epoch = '0', ''
if (not free) and enforce == '1' then
  local bk = p..'bal:'..acct
  if redis.call('EXISTS', bk) == 0 then return {'init'} end
  local v = redis.call('DECRBY', bk, cost)
  if v < 0 then
    redis.call('INCRBY', bk, cost)
    return {'funds', redis.call('GET', bk)}
  end
  reserved = cost
  epoch = redis.call('GET', p..'epoch:'..acct) or ''
end
if free then redis.call('INCRBY', fk, tokens); redis.call('EXPIRE', fk, 172800) end
local function bump(name, add, limit)
  if limit >= 0 then redis.call('INCRBY', name, add); redis.call('EXPIRE', name, 120) end
end
if key_id ~= '' then bump(kr, 1, krpm); bump(kt, tokens, ktpm) end
bump(ar, 1, arpm); bump(at, tokens, atpm)
return {'ok', tostring(minute), tostring(day), free and '1' or '0', reserved, epoch}
"""

SETTLE = """
local p, key_id, acct, minute, day = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local delta, free, fmodel = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local reserved, cost, epoch, enforce = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local function adjust(name)
  if delta ~= 0 and redis.call('EXISTS', name) == 1 then redis.call('INCRBY', name, delta) end
end
if key_id ~= '' then adjust(p..'t:k:'..key_id..':'..minute) end
adjust(p..'t:a:'..acct..':'..minute)
if free == '1' then
  adjust(p..'free:'..acct..':'..fmodel..':'..day)
  return {'0', redis.call('GET', p..'bal:'..acct) or ''}
end
if enforce ~= '1' then return {cost, ''} end
local bk = p..'bal:'..acct
if redis.call('EXISTS', bk) == 0 or (redis.call('GET', p..'epoch:'..acct) or '') ~= epoch then
  return {cost, ''}
end
redis.call('INCRBY', bk, reserved)
local after = redis.call('DECRBY', bk, cost)
if after < 0 then
  redis.call('SET', bk, '0')
  return {string.format('%.0f', tonumber(cost) + after), '0'}
end
return {cost, redis.call('GET', bk)}
"""

INIT = """
local p, acct, value, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('SET', p..'bal:'..acct, value, 'NX') then
  redis.call('SET', p..'epoch:'..acct, epoch)
  for i = 5, #ARGV do redis.call('SET', p..'applied:'..ARGV[i], '1', 'EX', 86400) end
  return 1
end
return 0
"""

APPLY = """
local p, acct, entry, amount = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', p..'applied:'..entry) == 1 then return 1 end
if redis.call('EXISTS', p..'bal:'..acct) == 0 then return 0 end
redis.call('INCRBY', p..'bal:'..acct, amount)
redis.call('SET', p..'applied:'..entry, '1', 'EX', 86400)
return 1
"""

SCOPES = {"rpm_k": ("this key", "requests"), "tpm_k": ("this key", "tokens"),
          "rpm_a": ("this account", "requests"), "tpm_a": ("this account", "tokens")}


def _lim(v: int | None) -> str:
    return "-1" if v is None else str(v)


class RedisLimiter:
    remote = True
    def __init__(self, url: str, prefix: str = "pl:") -> None:
        self.url = url
        self.prefix = prefix
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=5, decode_responses=True, socket_timeout=2.0,
            socket_connect_timeout=2.0, health_check_interval=10)
        self.redis: Any = aioredis.Redis(connection_pool=pool)
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self._init = self.redis.register_script(INIT)
        self._apply = self.redis.register_script(APPLY)

    async def _call(self, script: Any, args: list[str]) -> Any:
        try:
            return await script(keys=[], args=args)
        except RedisError as e:
            raise ServiceUnavailable(f"The limits and balance store (Redis) is unavailable: "
                                     f"{e.__class__.__name__}. Requests are refused until it is back.",
                                     code="limits_unavailable") from None

    async def admit(self, ask: Ask, load_balance: BalanceLoader) -> Ticket:
        args = [self.prefix, ask.key_id or "", ask.account_id, _lim(ask.key_limits.rpm), _lim(ask.key_limits.tpm),
                _lim(ask.account_limits.rpm), _lim(ask.account_limits.tpm), str(ask.tokens), str(ask.cost_pusd),
                str(ask.free_quota if ask.free_model else 0), ask.free_model or "",
                "1" if ask.enforce_balance else "0"]
        for _ in range(3):
            r = await self._call(self._admit, args)
            status = r[0]
            if status == "ok":
                return Ticket(ask, int(r[1]), int(r[2]), r[3] == "1", int(r[4]), r[5])
            if status == "init":
                value, included = await load_balance(ask.account_id)
                await self._call(self._init, [self.prefix, ask.account_id, str(value), secrets.token_hex(8),
                                              *included])
                continue
            if status == "funds":
                raise insufficient(int(r[1]), ask.cost_pusd)
            scope, what = SCOPES[status]
            limits = ask.key_limits if status.endswith("_k") else ask.account_limits
            limit = limits.rpm if what == "requests" else limits.tpm
            raise rate_limited(scope, what, limit or 0, float(r[1]))
        raise ServiceUnavailable("Could not initialise the account balance in Redis.", code="limits_unavailable")

    async def settle(self, ticket: Ticket, tokens: int, cost_pusd: int) -> Settled:
        a = ticket.ask
        r = await self._call(self._settle, [
            self.prefix, a.key_id or "", a.account_id, str(ticket.window), str(ticket.day), str(tokens - a.tokens),
            "1" if ticket.free else "0", a.free_model or "", str(ticket.reserved_pusd), str(cost_pusd),
            ticket.epoch, "1" if a.enforce_balance else "0"])
        return Settled(int(r[0]), int(r[1]) if r[1] != "" else None)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        return bool(await self._call(self._apply, [self.prefix, account_id, entry_id, str(amount_pusd)]))

    async def available(self, account_id: str) -> int | None:
        try:
            v = await self.redis.get(self.prefix + "bal:" + account_id)
        except RedisError as e:
            raise ServiceUnavailable(f"Redis unavailable: {e.__class__.__name__}", code="limits_unavailable") from None
        return int(v) if v is not None else None

    async def free_used(self, account_id: str, model: str, day: int) -> int:
        v = await self.redis.get(f"{self.prefix}free:{account_id}:{model}:{day}")
        return int(v or 0)

    async def claim_alert(self, account_id: str, threshold_pusd: int) -> bool:
        return bool(await self.redis.sadd(f"{self.prefix}alerted:{account_id}", str(threshold_pusd)))

    async def rearm_alerts(self, account_id: str, balance_pusd: int) -> None:
        key = f"{self.prefix}alerted:{account_id}"
        done = await self.redis.smembers(key)
        stale = [t for t in done if balance_pusd >= int(t)]
        if stale:
            await self.redis.srem(key, *stale)

    async def close(self) -> None:
        await self.redis.aclose()
