"""Redis limiter: one Lua script per operation, so any number of gateway processes share exact limits,
free quotas and balances. Windows come from Redis's own clock (TIME), never from the instances'.

This module is the one place where Redis errors meet the error tree: any failure to talk to Redis (a
``RedisError``, a reset or closed transport, a timeout) is a :class:`perilune.errors.LimitsUnavailable`
(503 ``limits_unavailable``). Money fails closed.

Every reservation is named (``res:<account>`` hash: reservation id -> amount and time), so settling
is idempotent, a settlement retried after a lost reply changes nothing, and a reservation whose
admission reply was lost can still be released by its id. When Redis comes back empty
(a restart without persistence), the ``boot`` key is gone: admissions wait until every instance has
contributed the charges it made that the database may not hold yet (``contribute``), then each balance
counter is rebuilt from the database on first use (``INIT``, with a new epoch, taking in charges
contributed before it existed). Reservations made before the loss are never refunded into a new counter.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from perilune.errors import LimitsUnavailable
from perilune.limits.base import Ask, BalanceLoader, Settled, Ticket, insufficient, rate_limited

T = TypeVar("T")

ADMIT = """
local p, key_id, acct = ARGV[1], ARGV[2], ARGV[3]
local krpm, ktpm, arpm, atpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local in_tokens, in_cost = tonumber(ARGV[8]), tonumber(ARGV[9])
local out_tokens, out_price, n, unit = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local flexible, min_out, rid = ARGV[14], tonumber(ARGV[15]), ARGV[16]
local quota, fmodel, enforce = tonumber(ARGV[17]), ARGV[18], ARGV[19]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ready = redis.call('GET', p..'boot')
if not ready then return {'boot'} end
if now < tonumber(ready) then return {'warming', string.format('%.3f', tonumber(ready) - now)} end
local minute = math.floor(now / 60)
local day = math.floor(now / 86400)
local retry = string.format('%.3f', 60 - (now % 60))
local function cost_at(out) return in_cost + out * n * out_price + unit end
local function int(x) return string.format('%.0f', x) end
local free = false
local fk = p..'free:'..acct..':'..fmodel..':'..day
if quota > 0 and tonumber(redis.call('GET', fk) or '0') + in_tokens + out_tokens * n <= quota then free = true end
local out, reserved, epoch = out_tokens, 0, ''
local bk = p..'bal:'..acct
if (not free) and enforce == '1' then
  if redis.call('EXISTS', bk) == 0 then return {'init'} end
  local bal = tonumber(redis.call('GET', bk))
  if cost_at(out) > bal then
    if flexible ~= '1' then return {'funds', int(bal), int(cost_at(out))} end
    local per, room = n * out_price, bal - in_cost - unit
    if per > 0 and room >= 0 then out = math.min(out_tokens, math.floor(room / per)) else out = -1 end
    if out < min_out then return {'funds', int(bal), int(cost_at(min_out))} end
  end
  reserved = cost_at(out)
end
local tokens = in_tokens + out * n
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
if reserved > 0 then
  local v = redis.call('DECRBY', bk, int(reserved))
  if v < 0 then
    redis.call('INCRBY', bk, int(reserved))
    return {'funds', int(v + reserved), int(reserved)}
  end
  epoch = redis.call('GET', p..'epoch:'..acct) or ''
end
if free then redis.call('INCRBY', fk, tokens); redis.call('EXPIRE', fk, 172800) end
local function bump(name, add, limit)
  if limit >= 0 then redis.call('INCRBY', name, add); redis.call('EXPIRE', name, 120) end
end
if key_id ~= '' then bump(kr, 1, krpm); bump(kt, tokens, ktpm) end
bump(ar, 1, arpm); bump(at, tokens, atpm)
redis.call('HSET', p..'res:'..acct, rid, int(reserved)..'|'..int(now))
return {'ok', tostring(minute), tostring(day), free and '1' or '0', int(reserved), epoch, int(out)}
"""

SETTLE = """
local p, key_id, acct, minute, day = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local delta, free, fmodel = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local charged, epoch, enforce, rid = tonumber(ARGV[10]), ARGV[11], ARGV[12], ARGV[13]
local bk, rk = p..'bal:'..acct, p..'res:'..acct
local held = redis.call('HGET', rk, rid)
if not held then
  -- settled already, or reserved from a counter Redis has since lost
  local current = (redis.call('EXISTS', bk) == 1) and (redis.call('GET', p..'epoch:'..acct) or '') == epoch
  if current or free == '1' or enforce ~= '1' then return {'dup', redis.call('GET', bk) or ''} end
  return {'stale', ''}
end
redis.call('HDEL', rk, rid)
local reserved = tonumber(string.match(held, '^%d+'))
local function adjust(name)
  if delta ~= 0 and minute ~= '' and redis.call('EXISTS', name) == 1 then redis.call('INCRBY', name, delta) end
end
if key_id ~= '' then adjust(p..'t:k:'..key_id..':'..minute) end
adjust(p..'t:a:'..acct..':'..minute)
if free == '1' then
  adjust(p..'free:'..acct..':'..fmodel..':'..day)
  return {'ok', redis.call('GET', bk) or ''}
end
if enforce ~= '1' then return {'ok', ''} end
if redis.call('EXISTS', bk) == 0 then return {'stale', ''} end
if charged > reserved then charged = reserved end
redis.call('INCRBY', bk, string.format('%.0f', reserved - charged))
return {'ok', redis.call('GET', bk)}
"""

CONTRIBUTE = """
local p, acct, cid, amount = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mk = p..'applied:c:'..cid
if redis.call('EXISTS', mk) == 1 then return 1 end
if redis.call('EXISTS', p..'bal:'..acct) == 1 then
  redis.call('DECRBY', p..'bal:'..acct, amount)
  redis.call('SET', mk, '1', 'EX', 86400)
  return 1
end
redis.call('HSET', p..'pre:'..acct, cid, amount)
redis.call('EXPIRE', p..'pre:'..acct, 86400)
return 0
"""

INIT = """
local p, acct, value, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local bk = p..'bal:'..acct
if redis.call('EXISTS', bk) == 1 then return 0 end
local included = {}
for i = 5, #ARGV do
  included[ARGV[i]] = true
  redis.call('SET', p..'applied:'..ARGV[i], '1', 'EX', 86400)
end
redis.call('SET', bk, value)
local pre = redis.call('HGETALL', p..'pre:'..acct)
for i = 1, #pre, 2 do
  local cid = 'c:'..pre[i]
  if not included[cid] then
    redis.call('DECRBY', bk, pre[i + 1])
    redis.call('SET', p..'applied:'..cid, '1', 'EX', 86400)
  end
end
redis.call('DEL', p..'pre:'..acct)
redis.call('SET', p..'epoch:'..acct, epoch)
return 1
"""

APPLY = """
local p, acct, entry, amount = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', p..'applied:'..entry) == 1 then return 1 end
if redis.call('EXISTS', p..'bal:'..acct) == 0 then return 0 end
redis.call('INCRBY', p..'bal:'..acct, amount)
redis.call('SET', p..'applied:'..entry, '1', 'EX', 86400)
return 1
"""

ARM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- rounded down to the millisecond: never later than asked (an admission right after arming must pass)
redis.call('SET', ARGV[1]..'boot', string.format('%.3f', math.floor((now + tonumber(ARGV[2])) * 1000) / 1000), 'NX')
return string.format('%.3f', tonumber(redis.call('GET', ARGV[1]..'boot')) - now)
"""

READY = """
local v = redis.call('GET', ARGV[1]..'boot')
if not v then return false end
local t = redis.call('TIME')
return string.format('%.3f', tonumber(v) - (tonumber(t[1]) + tonumber(t[2]) / 1000000))
"""

SCOPES = {"rpm_k": ("this key", "requests"), "tpm_k": ("this key", "tokens"),
          "rpm_a": ("this account", "requests"), "tpm_a": ("this account", "tokens")}
# What a broken connection looks like from redis-py on asyncio/uvloop, besides RedisError: resets,
# refused connections, "unable to perform operation on <TCPTransport closed>", timeouts.
TRANSPORT_ERRORS = (RedisError, OSError, RuntimeError, TimeoutError, EOFError)


def _lim(v: int | None) -> str:
    return "-1" if v is None else str(v)


def _unavailable(e: BaseException) -> LimitsUnavailable:
    return LimitsUnavailable(f"The limits and balance store (Redis) is unavailable: {e.__class__.__name__}. "
                             "Requests are refused until it is back.", retry_after_s=1.0)


class RedisLimiter:
    remote = True

    def __init__(self, url: str, prefix: str = "pl:") -> None:
        self.url = url
        self.prefix = prefix
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=2, decode_responses=True, socket_timeout=2.0,
            socket_connect_timeout=2.0, health_check_interval=10, retry_on_timeout=False)
        self.redis: Any = aioredis.Redis(connection_pool=pool)
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self._contribute = self.redis.register_script(CONTRIBUTE)
        self._init = self.redis.register_script(INIT)
        self._apply = self.redis.register_script(APPLY)
        self._arm = self.redis.register_script(ARM)
        self._ready = self.redis.register_script(READY)

    async def _do(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except TRANSPORT_ERRORS as e:
            raise _unavailable(e) from None

    async def _call(self, script: Any, args: list[str]) -> Any:
        return await self._do(script(keys=[], args=args))

    async def admit(self, ask: Ask, load_balance: BalanceLoader) -> Ticket:
        args = [self.prefix, ask.key_id or "", ask.account_id, _lim(ask.key_limits.rpm), _lim(ask.key_limits.tpm),
                _lim(ask.account_limits.rpm), _lim(ask.account_limits.tpm), str(ask.in_tokens),
                str(ask.in_cost_pusd), str(ask.out_tokens), str(ask.out_price_pusd), str(ask.n),
                str(ask.unit_cost_pusd), "1" if ask.flexible else "0", str(ask.min_out), ask.request_id,
                str(ask.free_quota if ask.free_model else 0), ask.free_model or "",
                "1" if ask.enforce_balance else "0"]
        for _ in range(3):
            r = await self._call(self._admit, args)
            status = r[0]
            if status == "ok":
                return Ticket(ask, int(r[1]), int(r[2]), r[3] == "1", int(r[4]), r[5], out_tokens=int(r[6]))
            if status == "init":
                value, included = await load_balance(ask.account_id)
                await self._call(self._init, [self.prefix, ask.account_id, str(value), secrets.token_hex(8),
                                              *included])
                continue
            if status in ("boot", "warming"):
                raise LimitsUnavailable("The limits and balance store (Redis) restarted; balances are being "
                                        "rebuilt. Try again in a second.", retry_after_s=1.0)
            if status == "funds":
                raise insufficient(int(r[1]), int(r[2]))
            scope, what = SCOPES[status]
            limits = ask.key_limits if status.endswith("_k") else ask.account_limits
            limit = limits.rpm if what == "requests" else limits.tpm
            raise rate_limited(scope, what, limit or 0, float(r[1]))
        raise LimitsUnavailable("Could not initialise the account balance in Redis.")

    def _settle_args(self, ticket: Ticket, tokens: int, charged_pusd: int) -> list[str]:
        a = ticket.ask
        return [self.prefix, a.key_id or "", a.account_id, str(ticket.window), str(ticket.day),
                str(tokens - ticket.tokens), "1" if ticket.free else "0", a.free_model or "",
                str(ticket.reserved_pusd), str(min(charged_pusd, ticket.reserved_pusd)), ticket.epoch,
                "1" if a.enforce_balance else "0", a.request_id]

    @staticmethod
    def _settled(r: list[str]) -> Settled:
        if r[0] == "stale":
            return Settled(None, stale=True)
        return Settled(int(r[1]) if r[1] != "" else None)

    async def settle(self, ticket: Ticket, tokens: int, charged_pusd: int) -> Settled:
        return self._settled(await self._call(self._settle, self._settle_args(ticket, tokens, charged_pusd)))

    async def settle_many(self, items: Sequence[tuple[Ticket, int, int]]) -> list[Settled]:
        """Many settlements in one round trip (an outbox drained after an outage): each is idempotent,
        so a batch whose reply is lost is simply sent again."""
        async def run() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for ticket, tokens, charged in items:
                    await self._settle(keys=[], args=self._settle_args(ticket, tokens, charged), client=pipe)
                return list(await pipe.execute())
        return [self._settled(r) for r in await self._do(run())]

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def contribute(self, account_id: str, charge_id: str, charged_pusd: int) -> None:
        await self._call(self._contribute, [self.prefix, account_id, charge_id, str(charged_pusd)])

    async def apply_ledger(self, account_id: str, entry_id: str, amount_pusd: int) -> bool:
        return bool(await self._call(self._apply, [self.prefix, account_id, entry_id, str(amount_pusd)]))

    async def available(self, account_id: str) -> int | None:
        v = await self._do(self.redis.get(self.prefix + "bal:" + account_id))
        return int(v) if v is not None else None

    async def reserved(self, account_id: str, max_age_s: float | None = None) -> int:
        """Money held by open reservations; with ``max_age_s``, older ones (whose request cannot still be
        running: a lost reply to an admission, a crashed instance) are dropped instead."""
        key = self.prefix + "res:" + account_id
        held: dict[str, str] = await self._do(self.redis.hgetall(key))
        now = time.time()
        total, stale = 0, []
        for rid, v in held.items():
            amount, _, since = v.partition("|")
            if max_age_s is not None and since and now - int(since) > max_age_s:
                stale.append(rid)
            else:
                total += int(amount)
        if stale:
            await self._do(self.redis.hdel(key, *stale))
        return total

    async def set_balance(self, account_id: str, available_pusd: int) -> None:
        await self._do(self.redis.set(self.prefix + "bal:" + account_id, str(available_pusd)))

    async def free_used(self, account_id: str, model: str, day: int) -> int:
        v = await self._do(self.redis.get(f"{self.prefix}free:{account_id}:{model}:{day}"))
        return int(v or 0)

    async def claim_alert(self, account_id: str, threshold_pusd: int) -> bool:
        return bool(await self._do(self.redis.sadd(f"{self.prefix}alerted:{account_id}", str(threshold_pusd))))

    async def rearm_alerts(self, account_id: str, balance_pusd: int) -> None:
        key = f"{self.prefix}alerted:{account_id}"
        done = await self._do(self.redis.smembers(key))
        stale = [t for t in done if balance_pusd >= int(t)]
        if stale:
            await self._do(self.redis.srem(key, *stale))

    async def ready_at(self) -> float | None:
        v = await self._call(self._ready, [self.prefix])
        return None if v is None else max(float(v), 0.0)

    async def arm(self, grace_s: float) -> None:
        await self._call(self._arm, [self.prefix, str(grace_s)])

    async def close(self) -> None:
        await self.redis.aclose()
