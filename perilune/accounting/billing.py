"""A request's money: reserve before the upstream call, charge what was used, settle or release once.

The reservation is what the request may cost at most. When the client gave no output limit, the
output limit is lowered to what the balance covers (never above the model's maximum) and that limit
is sent upstream, so an upstream cannot run past what was reserved. The charge is computed here, in
process, never above the reservation, so the usage record carries it even when the limiter cannot be
reached; the limiter only has to replace the reservation by the charge, which is idempotent.

Faults:

- A settlement that cannot reach Redis goes to an outbox (memory, and ``spool/settle-<pid>.jsonl``
  on disk) and is retried until it lands; an outbox left by a process that died is taken over.
- When Redis lost its data (restart without persistence), every charge of the last
  ``RECENT_CHARGES_S`` that the database may not hold yet is contributed again before admissions
  resume (see :mod:`perilune.limits.redis`), so a rebuilt balance includes charges still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from perilune.accounting.catalog import ModelInfo
from perilune.accounting.pricing import MILLION
from perilune.accounting.recorder import pid_alive
from perilune.errors import InvalidRequest, LimitsUnavailable, PeriluneError
from perilune.limits.base import MIN_FLEXIBLE_OUT, NO_LIMITS, Ask, Limiter, Limits, Ticket
from perilune.schema.canonical import Cost, Usage

if TYPE_CHECKING:
    from perilune.accounting.ledger import Accountant
    from perilune.gateway.auth import Principal

log = logging.getLogger("perilune.billing")

PROMPT_MARGIN = 1.2  # local prompt estimates are approximate: reserve a fifth more, plus a little
PROMPT_SLACK = 16
UNKNOWN_MAX_OUTPUT = 32_768  # a model whose catalog entry names no output limit
MAX_CHOICES = 128
RECENT_CHARGES_S = 300.0  # charges remembered for a rebuild after Redis lost its data
REBUILD_GRACE_S = 1.0  # after a loss, admissions wait this long for every instance to contribute
LOOP_S = 0.25
DRAIN_BATCH = 256  # outbox settlements per round trip
SETTLE_WINDOW_S = 0.005  # Redis mode: the settlements of this long share one round trip


@dataclass(frozen=True, slots=True)
class Reservation:
    ticket: Ticket | None  # None: nothing reserved (no account, or prepaid off and no limits)
    granted_output: int  # the output limit the upstream is sent
    model: ModelInfo

    @property
    def free(self) -> bool:
        return self.ticket is not None and self.ticket.free


@dataclass(frozen=True, slots=True)
class Charge:
    charged_pusd: int
    free_tokens: int


def output_limit(model: ModelInfo, requested: int | None, n: int, param: str) -> int:
    """The model's output limit applied to what the client asked for: a value above it is a 400."""
    cap = model.max_output_tokens or UNKNOWN_MAX_OUTPUT
    if requested is not None:
        if requested < 1:
            raise InvalidRequest(f"Invalid '{param}': {requested}; it must be at least 1.", param=param,
                                 code="invalid_value")
        if requested > cap:
            raise InvalidRequest(f"Invalid '{param}': {requested} is above the maximum output of "
                                 f"'{model.id}' ({cap} tokens).", param=param, code="invalid_value")
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"Invalid 'n': {n}; it must be between 1 and {MAX_CHOICES}.", param="n",
                             code="invalid_value")
    return requested if requested is not None else cap


def _ceil_pico(usd: Decimal) -> int:
    return int((usd * 10**12).to_integral_value(rounding="ROUND_CEILING"))


class RecentCharges:
    """The charges of the last minutes, oldest first, in parallel arrays: ~32 bytes per charge besides its
    id, where a tuple per charge took ~130 (at 1,500 requests/s, 300 s of charges are 450,000 of them)."""

    def __init__(self) -> None:
        self._when = array("d")
        self._amount = array("q")
        self._account: list[str] = []  # references to the principal's (shared) account id strings
        self._charge: list[str] = []
        self._head = 0  # entries before it are forgotten; compacted once they are half of the arrays

    def add(self, when: float, account_id: str, charge_id: str, amount_pusd: int) -> None:
        self._when.append(when)
        self._amount.append(amount_pusd)
        self._account.append(account_id)
        self._charge.append(charge_id)

    def forget_before(self, cutoff: float) -> None:
        when, head, n = self._when, self._head, len(self._when)
        while head < n and when[head] < cutoff:
            head += 1
        if head and head * 2 >= n:
            del self._when[:head], self._amount[:head], self._account[:head], self._charge[:head]
            head = 0
        self._head = head

    def __len__(self) -> int:
        return len(self._when) - self._head

    def __iter__(self) -> Iterator[tuple[str, str, int]]:
        h = self._head
        return zip(self._account[h:], self._charge[h:], self._amount[h:], strict=True)


class Billing:
    def __init__(self, limiter: Limiter, accountant: Accountant, spool_dir: Path) -> None:
        self.limiter = limiter
        self.accountant = accountant
        self.spool_dir = spool_dir
        self.outbox_path = spool_dir / f"settle-{os.getpid()}.jsonl"
        self._outbox: list[tuple[Ticket, int, int]] = []  # ticket, tokens used, charged pico-USD
        self._recent = RecentCharges()  # Redis mode only
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._due: list[tuple[Ticket, int, int]] = []  # Redis mode: settlements waiting for their batch
        self._due_timer: asyncio.TimerHandle | None = None
        self.written_off_pusd = 0
        self._price_cache: dict[str, tuple[ModelInfo, int, int]] = {}

    @property
    def remote(self) -> bool:
        return self.limiter.remote

    # ---- lifecycle ----
    async def start(self) -> None:
        self._take_over_outboxes()
        if self.limiter.remote:
            with contextlib.suppress(PeriluneError):  # Redis away at start: the loop keeps trying
                await self._check_loss()
                wait = await self.limiter.ready_at()
                if wait:
                    await asyncio.sleep(wait)
            self._task = asyncio.create_task(self._loop(), name="perilune-billing")

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._send_due()
        if self._pending:
            await asyncio.wait(self._pending, timeout=timeout_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(PeriluneError):
            await asyncio.wait_for(self._drain(), timeout_s)
        self._persist()

    # ---- request path ----
    def _prices(self, model: ModelInfo) -> tuple[int, int]:
        """Pico-USD per input token (the dearer of input and cache write) and per output token, rounded
        up; computed once per model, so the request path reserves in integers."""
        got = self._price_cache.get(model.id)
        if got is None or got[0] is not model:
            p = model.effective_price
            per_in = _ceil_pico(max(p.input or Decimal(0), p.cache_write or Decimal(0)) / MILLION)
            got = self._price_cache[model.id] = (model, per_in, _ceil_pico((p.output or Decimal(0)) / MILLION))
        return got[1], got[2]

    async def reserve(self, principal: Principal | None, model: ModelInfo, *, reservation_id: str,
                      prompt_tokens: int, max_output: int | None, n: int = 1, unit_usd: Decimal = Decimal(0),
                      output_param: str = "max_tokens", generates: bool = True) -> Reservation:
        """Admit one attempt group (one model): limits, free quota, and the worst case from the balance."""
        out = output_limit(model, max_output, n, output_param) if generates else 0
        if principal is None or principal.account_id is None:
            return Reservation(None, out, model)
        in_price, out_price = self._prices(model)
        in_tokens = math.ceil(prompt_tokens * PROMPT_MARGIN) + PROMPT_SLACK
        acct = self.accountant.account(principal.account_id)
        free = model.free_max_tokens > 0 and not model.premium
        ask = Ask(
            account_id=principal.account_id, key_id=principal.key_id, key_limits=principal.limits,
            account_limits=Limits(acct.rpm_limit, acct.tpm_limit) if acct else NO_LIMITS,
            in_tokens=in_tokens, in_cost_pusd=in_tokens * in_price, out_tokens=out, out_price_pusd=out_price,
            n=n, unit_cost_pusd=_ceil_pico(unit_usd) if unit_usd else 0, flexible=generates and max_output is None,
            min_out=min(MIN_FLEXIBLE_OUT, out) if out else 0, request_id=reservation_id,
            free_model=model.id if free else None, free_quota=model.free_max_tokens if free else 0,
            enforce_balance=self.accountant.enforce_balance,
        )
        ticket = await self._admit(ask)
        return Reservation(ticket, ticket.out_tokens if generates else 0, model)

    async def _admit(self, ask: Ask) -> Ticket:
        """Admission that cannot leak: a client hanging up while Redis answers, or a reply lost to a
        timeout, leaves a reservation that is released as soon as it is known (or by its id)."""
        if not self.limiter.remote:
            return await self.limiter.admit(ask, self.accountant.load_balance)
        task = asyncio.ensure_future(self.limiter.admit(ask, self.accountant.load_balance))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._release_orphan)
            raise
        except LimitsUnavailable:
            # the script may have run before the connection broke: release by id, once Redis is back
            self._outbox.append((Ticket(ask, 0, 0, False, 0), 0, 0))
            raise

    def _release_orphan(self, task: asyncio.Task[Ticket]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        t = asyncio.get_running_loop().create_task(self._settle(task.result(), 0, 0))
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    def charge(self, res: Reservation | None, usage: Usage | None, cost: Cost | None) -> Charge:
        """What the request is charged: its cost, never more than was reserved, nothing when free."""
        if usage is None or cost is None:
            return Charge(0, 0)
        if res is not None and res.free:
            return Charge(0, usage.total_tokens)
        pusd = cost.total_pusd
        t = res.ticket if res is not None else None
        if t is not None and t.ask.enforce_balance and pusd > t.reserved_pusd:
            self.written_off_pusd += pusd - t.reserved_pusd
            log.error("request %s cost %d pico-USD, above its reservation of %d; charged the reservation",
                      t.ask.request_id, pusd, t.reserved_pusd)
            pusd = t.reserved_pusd
        return Charge(pusd, 0)

    async def settle(self, res: Reservation | None, usage: Usage | None, charge: Charge) -> None:
        """Replace the reservation by the charge (or release it). Never raises: a limiter fault puts the
        settlement in the outbox. In Redis mode it runs after the response (drained at shutdown)."""
        if res is None or res.ticket is None:
            return
        t = res.ticket
        tokens = usage.total_tokens if usage is not None else 0
        if not self.limiter.remote:  # in-process counters are never lost while the process runs
            await self._settle(t, tokens, charge.charged_pusd)
            return
        if charge.charged_pusd and t.ask.enforce_balance and not t.free:  # contributed again if Redis loses it
            self._recent.add(time.monotonic(), t.ask.account_id, t.ask.request_id, charge.charged_pusd)
        # Batched: the settlements of SETTLE_WINDOW_S go to Redis in one pipelined round trip, so a
        # request costs about one round trip (its admission), not two.
        self._due.append((t, tokens, charge.charged_pusd))
        if len(self._due) >= DRAIN_BATCH:
            self._send_due()
        elif self._due_timer is None:
            self._due_timer = asyncio.get_running_loop().call_later(SETTLE_WINDOW_S, self._send_due)

    def _send_due(self) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        if not self._due:
            return
        batch, self._due = self._due, []
        task = asyncio.get_running_loop().create_task(self._settle_batch(batch))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, t: Ticket, tokens: int, charged: int) -> None:
        await self._settle_batch([(t, tokens, charged)])

    async def _settle_batch(self, batch: list[tuple[Ticket, int, int]]) -> None:
        try:
            if len(batch) == 1:
                results = [await self.limiter.settle(*batch[0])]
            else:
                results = await self.limiter.settle_many(batch)
        except PeriluneError as e:  # idempotent: the outbox sends the whole batch again
            log.warning("settlement of %d request(s) deferred (%s); kept in the outbox", len(batch), e.code)
            self._outbox.extend(batch)
            self._persist()
            return
        for (t, _, charged), settled in zip(batch, results, strict=True):
            if settled.stale and charged:
                await self._contribute(t.ask.account_id, t.ask.request_id, charged)
            if settled.balance_pusd is not None:
                try:
                    await self.accountant.check_alerts(t.ask.account_id, settled.balance_pusd)
                except PeriluneError as e:
                    log.warning("low-balance check skipped for %s: %s", t.ask.account_id, e.message)

    async def _contribute(self, account_id: str, charge_id: str, charged: int) -> None:
        try:
            await self.limiter.contribute(account_id, charge_id, charged)
        except PeriluneError:
            self._recent.add(time.monotonic(), account_id, charge_id, charged)  # the loop retries

    # ---- background ----
    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(LOOP_S)
            try:
                await self._check_loss()
                await self._drain()
            except PeriluneError as e:
                if not failing:
                    log.warning("limits store unreachable (%s); settlements wait in the outbox", e.code)
                failing = True
            else:
                if failing:
                    log.info("limits store reachable again")
                failing = False

    async def _check_loss(self) -> None:
        """After Redis lost its data: contribute recent charges, then let admissions resume."""
        self._recent.forget_before(time.monotonic() - RECENT_CHARGES_S)
        if await self.limiter.ready_at() is not None:
            return
        if self._recent:
            log.warning("the limits store lost its data; contributing %d recent charges", len(self._recent))
        for account_id, charge_id, charged in list(self._recent):
            await self.limiter.contribute(account_id, charge_id, charged)
        await self.limiter.arm(REBUILD_GRACE_S)

    async def _drain(self) -> None:
        """Settle the outbox in batches (after an outage it holds a release for every refused admission,
        so one round trip each would keep real settlements waiting behind them for seconds)."""
        while self._outbox:
            batch = self._outbox[:DRAIN_BATCH]
            results = await self.limiter.settle_many(batch)
            del self._outbox[:len(batch)]  # settlements deferred meanwhile were appended behind the batch
            for (t, _, charged), settled in zip(batch, results, strict=True):
                if settled.stale and charged:
                    await self._contribute(t.ask.account_id, t.ask.request_id, charged)
            if not self._outbox:
                log.info("outbox settled")
            self._persist()

    # ---- outbox on disk ----
    def _persist(self) -> None:
        if not self._outbox:
            with contextlib.suppress(FileNotFoundError):
                self.outbox_path.unlink()
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.outbox_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for t, tokens, charged in self._outbox:
                f.write(orjson.dumps({"t": asdict(t), "tokens": tokens, "charged": charged}) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.outbox_path)

    def _take_over_outboxes(self) -> None:
        """Settlements left on disk by this pid's predecessor or a process that is gone."""
        if not self.spool_dir.exists():
            return
        for path in self.spool_dir.glob("settle-*.jsonl"):
            pid = path.stem.removeprefix("settle-")
            if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
                continue
            for line in path.read_bytes().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    obj = orjson.loads(line)
                    self._outbox.append((_ticket(obj["t"]), int(obj["tokens"]), int(obj["charged"])))
            if path != self.outbox_path:
                path.unlink()
        self._persist()


def _ticket(d: dict[str, Any]) -> Ticket:
    a = dict(d["ask"])
    a["key_limits"], a["account_limits"] = Limits(**a["key_limits"]), Limits(**a["account_limits"])
    return Ticket(**{**d, "ask": Ask(**a)})
