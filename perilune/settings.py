"""Settings: one TOML file plus ``PERILUNE_*`` environment overrides, validated once at start.

Unknown keys and bad values are rejected with a message naming the key and the value. Units are in
the names (``timeout_s``). Settings are passed explicitly; nothing reads them from a module global.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

ENV_PREFIX = "PERILUNE_"
# PERILUNE_* variables that are not settings keys.
ENV_NOT_SETTINGS = {"PERILUNE_CONFIG", "PERILUNE_ADMIN_KEY", "PERILUNE_E2E", "PERILUNE_TEST_POSTGRES_URL",
                    "PERILUNE_TEST_REDIS_URL", "PERILUNE_WORKER_ID"}

# "openai": the OpenAI wire format including the Responses API (passed natively); "openai-compatible": chat,
# completions, embeddings, images, audio only (a /v1/responses request is translated to chat for it).
ProviderType = Literal["openai", "openai-compatible", "anthropic", "gemini"]
RoutingPolicy = Literal["order", "price", "latency", "throughput", "weighted"]


class SettingsError(Exception):
    """A configuration problem, with the offending key in the message."""


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Timeouts(_Base):
    connect_s: float = 5.0
    first_byte_s: float = 120.0
    total_s: float = 600.0
    stream_idle_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("connect_s", "first_byte_s", "total_s", "stream_idle_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"timeouts.{name} must be > 0, got {getattr(self, name)!r}")


class ProviderConfig(_Base):
    name: str
    type: ProviderType = "openai-compatible"
    base_url: str | None = None
    api_key_env: str | None = None
    # Catalog model ids this provider serves, in addition to the catalog's own `providers` lists.
    models: list[str] = msgspec.field(default_factory=list)
    # Catalog id -> the id this upstream knows the model by.
    model_map: dict[str, str] = msgspec.field(default_factory=dict)
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Client request headers passed on to this upstream: exact names, or prefixes ending in "*".
    forward_headers: list[str] = msgspec.field(default_factory=list)
    max_connections: int = 0  # 0 = unlimited
    timeouts: Timeouts | None = None
    # Catalog id -> this provider's price for it (used by the `price` policy and charged when it serves).
    prices: dict[str, PriceConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"providers.name must be a non-empty name without '/', got {self.name!r}")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"providers[{self.name}].base_url must start with http:// or https://, "
                             f"got {self.base_url!r}")


class PriceConfig(_Base):
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    per_image: Decimal | None = None
    per_audio_minute: Decimal | None = None


class ModelConfig(_Base):
    """`[models."<id>"]`: override a catalog model, or add a new one (then providers and price are needed)."""

    name: str | None = None
    vendor: str | None = None
    providers: list[str] | None = None
    kind: Literal["chat", "embedding", "image", "transcription"] | None = None
    context: int | None = None
    max_output_tokens: int | None = None
    price: PriceConfig | None = None
    discount_percentage: Decimal | None = None
    input_modalities: list[str] | None = None
    output_modalities: list[str] | None = None
    supported_parameters: list[str] | None = None
    reasoning: bool | None = None
    description: str | None = None
    enabled: bool | None = None
    free_max_tokens: int | None = None
    premium: bool | None = None
    max_dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None  # embeddings
    # routing (issue 9): fallback models, the order of this model's providers, hedging
    fallbacks: list[str] | None = None
    routing: RoutingPolicy | None = None  # default "order": the configured order of its providers
    weights: dict[str, Annotated[float, msgspec.Meta(gt=0)]] | None = None  # provider -> weight ("weighted")
    hedge: bool | None = None  # hedge streamed requests to this model (per request: "hedge": true)

    def __post_init__(self) -> None:
        d = self.discount_percentage
        if d is not None and not (Decimal(0) <= d <= Decimal(100)):
            raise ValueError(f"discount_percentage must be between 0 and 100, got {d}")


Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Resilience(_Base):
    """`[resilience]`: circuit breakers, retries and hedging per deployment (provider x model)."""

    breaker_failures: Annotated[int, msgspec.Meta(ge=1)] = 5  # consecutive failures that open it
    breaker_error_rate: Fraction = 0.5  # ... or this error rate over breaker_window_s
    breaker_min_requests: Annotated[int, msgspec.Meta(ge=1)] = 20  # requests in the window before the rate counts
    breaker_window_s: Seconds = 30.0
    breaker_cooldown_s: Seconds = 5.0  # first cooldown; doubles per failed probe
    breaker_cooldown_max_s: Seconds = 60.0
    retry_after_max_s: Seconds = 300.0  # an upstream's Retry-After is the cooldown, at most this long
    probe_timeout_s: Seconds = 30.0  # a half-open probe that never reports frees its slot after this
    retry_rounds: Annotated[int, msgspec.Meta(ge=0)] = 1  # passes over the plan after the first one
    retry_base_ms: Annotated[float, msgspec.Meta(ge=0)] = 50.0
    retry_max_ms: Annotated[float, msgspec.Meta(ge=0)] = 2000.0
    stats_window_s: Seconds = 60.0  # live figures (GET /v1/providers, latency/throughput routing)
    degraded_error_rate: Fraction = 0.1
    hedge_quantile: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.95  # of live TTFT; see HedgePolicy
    hedge_median_multiple: Annotated[float, msgspec.Meta(ge=0)] = 3.0  # ... at most this many medians (0 = no cap)
    hedge_min_samples: Annotated[int, msgspec.Meta(ge=1)] = 20
    hedge_default_ms: Annotated[float, msgspec.Meta(gt=0)] | None = None  # before that many samples
    hedge_min_ms: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    hedge_max_ms: Annotated[float, msgspec.Meta(gt=0)] = 30_000.0
    reachability_interval_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0  # TCP connect to each provider; 0 = off
    reachability_timeout_s: Seconds = 2.0


JWT_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
JWT_ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                             "EdDSA")


class Jwt(_Base):
    """`[jwt]`: accept ``Authorization: Bearer <jwt>`` signed with a shared secret or a key in a JWKS."""

    hs256_secret_env: str | None = None  # env var holding the HMAC secret (>= 32 bytes)
    jwks_file: str | None = None
    jwks_url: str | None = None
    jwks_refresh_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    jwks_min_refetch_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0  # unknown-kid refetch rate limit
    algorithms: list[str] | None = None  # default: HS256 with a secret, RS256 + ES256 with a JWKS
    audience: str | list[str] | None = None  # unset: tokens that carry an `aud` are rejected
    issuer: str | list[str] | None = None
    # Which account a token acts for (never named by the token itself): an explicit link of its
    # issuer + subject (perilune identities link), else account_map[value of account_claim], else,
    # with auto_accounts, an account of its own (id jwt_...); otherwise 403 identity_not_linked.
    account_claim: str = "sub"
    account_map: dict[str, str] = msgspec.field(default_factory=dict)
    auto_accounts: bool = False
    leeway_s: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    required_claims: list[str] = msgspec.field(default_factory=lambda: ["exp"])

    def __post_init__(self) -> None:
        if not (self.hs256_secret_env or self.jwks_file or self.jwks_url):
            raise ValueError("jwt needs jwt.hs256_secret_env, jwt.jwks_file or jwt.jwks_url")
        if self.jwks_file and self.jwks_url:
            raise ValueError("jwt.jwks_file and jwt.jwks_url are exclusive: set one of them")
        if self.jwks_url and not self.jwks_url.startswith(("http://", "https://")):
            raise ValueError(f"jwt.jwks_url must start with http:// or https://, got {self.jwks_url!r}")
        if not self.account_claim:
            raise ValueError("jwt.account_claim must not be empty")
        if not all(self.required_claims):
            raise ValueError("jwt.required_claims must not contain empty names")
        if self.algorithms is None:
            return
        if not self.algorithms:
            raise ValueError("jwt.algorithms must not be empty")
        for alg in self.algorithms:
            if alg.strip().lower() == "none":
                raise ValueError("jwt.algorithms must not include 'none': unsigned tokens are never accepted")
            if alg not in JWT_HMAC_ALGORITHMS + JWT_ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"jwt.algorithms: unsupported algorithm {alg!r}; supported: "
                                 f"{', '.join(JWT_HMAC_ALGORITHMS + JWT_ASYMMETRIC_ALGORITHMS)}")
            if alg in JWT_HMAC_ALGORITHMS and not self.hs256_secret_env:
                raise ValueError(f"jwt.algorithms lists {alg}, which needs jwt.hs256_secret_env")
            if alg in JWT_ASYMMETRIC_ALGORITHMS and not (self.jwks_file or self.jwks_url):
                raise ValueError(f"jwt.algorithms lists {alg}, which needs jwt.jwks_file or jwt.jwks_url")
        if (self.jwks_file or self.jwks_url) and not set(self.algorithms) & set(JWT_ASYMMETRIC_ALGORITHMS):
            raise ValueError("jwt.algorithms lists no asymmetric algorithm, so the JWKS would never be used")

    @property
    def allowed_algorithms(self) -> tuple[str, ...]:
        if self.algorithms is not None:
            return tuple(dict.fromkeys(self.algorithms))
        hmac = ("HS256",) if self.hs256_secret_env else ()
        return hmac + (("RS256", "ES256") if self.jwks_file or self.jwks_url else ())


class Outbound(_Base):
    """`[outbound]`: requests perilune makes on its own (alert webhooks, the JWKS URL); see perilune._outbound."""

    allow_http: bool = False  # also permit http:// URLs (default: https only)
    # host names, addresses or networks (CIDR) exempt from the refusal of loopback/private/link-local
    allow_hosts: list[str] = msgspec.field(default_factory=list)
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0

    def __post_init__(self) -> None:
        from perilune._outbound import split_allow_list

        split_allow_list(self.allow_hosts)  # ValueError names the bad entry


class RouterSettings(_Base):
    """`[router]`: the semantic router (POST /v1/router)."""

    enabled: bool = True
    profiles: str | None = None  # a profile file (`perilune router build`); default: the shipped one
    # auto (MiniLM when the router extra is installed, else hashing) | minilm | hashing | gateway:<model>
    embedder: str = "auto"
    cache_size: Annotated[int, msgspec.Meta(ge=0)] = 10_000  # prompts whose cluster weights are kept
    threads: Annotated[int, msgspec.Meta(ge=0)] = 0  # onnxruntime threads for MiniLM (0: one)
    # profile model id -> the catalog model that serves it here (default: the same id)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    # retention (0 days = keep forever); either kind also goes when its request's usage record does
    decisions_days: Annotated[float, msgspec.Meta(ge=0)] = 30.0  # routed requests' decisions (Log detail)
    feedback_days: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # POST /v1/feedback scores

    def __post_init__(self) -> None:
        if self.embedder not in ("auto", "minilm", "hashing") and not (
                self.embedder.startswith("gateway:") and self.embedder[len("gateway:"):].strip()):
            raise ValueError("router.embedder must be auto, minilm, hashing or gateway:<model>, "
                             f"got {self.embedder!r}")


class Settings(_Base):
    home: str = "~/.perilune"
    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    database_url: str | None = None  # default: sqlite file in home
    # connect, pool checkout and every statement: past it the call fails (503) and usage records spool
    database_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 5.0
    # SIGTERM: open streams get this long to finish, then an error event in their dialect and an end
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    redis_url: str | None = None  # shared limits and balances; needed by workers > 1
    prepaid: bool = True  # requests are paid from the account's prepaid balance (402 when it runs out)
    first_run_credit_usd: Decimal = Decimal(10)  # starting balance of the first account, on first start
    admin_key_env: str = "PERILUNE_ADMIN_KEY"
    max_body_bytes: int = 8 * 1024 * 1024
    max_upload_bytes: int = 25 * 1024 * 1024
    models_require_key: bool = False
    simulator: Literal["auto", "always", "never"] = "auto"
    simulator_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # the demo simulator; 0: any free port
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    key_refresh_s: float = 0.5
    usage_queue_size: int = 100_000
    usage_batch_size: int = 500
    usage_flush_s: float = 0.25
    # "process": usage rows are written by a separate writer process fed over a pipe (measured cheaper for
    # the event loop, BENCHMARKS.md); "thread": from worker threads of the gateway process
    usage_writer: Literal["thread", "process"] = "process"
    # usage log & observability (issue 5); 0 days = keep forever
    usage_max_pending_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024 * 1024
    usage_access_log: bool = False  # one JSON log line per request, written by the usage writer
    observability_max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1024 * 1024  # per request / response
    retention_records_days: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    retention_payloads_days: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    retention_rollups_days: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    retention_interval_s: Annotated[float, msgspec.Meta(gt=0)] = 3600.0
    retention_batch_size: Annotated[int, msgspec.Meta(ge=1)] = 5000
    dashboard_session_s: Annotated[float, msgspec.Meta(gt=0)] = 12 * 3600.0
    metrics_public: bool = False  # GET /metrics without the admin key
    otel_traces: bool = False  # one OpenTelemetry span per request, from its usage record (perilune.tracing)
    timeouts: Timeouts = msgspec.field(default_factory=Timeouts)
    providers: list[ProviderConfig] = msgspec.field(default_factory=list)
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    # `[aliases]`: a model id clients send -> the model (or "provider/model" pin) that serves it
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    resilience: Resilience = msgspec.field(default_factory=Resilience)
    jwt: Jwt | None = None
    outbound: Outbound = msgspec.field(default_factory=Outbound)
    # believe X-Forwarded-Proto (a TLS-terminating proxy in front): dashboard cookies become Secure
    trust_proxy_headers: bool = False
    router: RouterSettings = msgspec.field(default_factory=RouterSettings)

    def __post_init__(self) -> None:
        if not (0 < self.port < 65536):
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.workers > 1 and not self.redis_url:
            raise ValueError(f"workers = {self.workers} needs redis_url: rate limits and balances must be "
                             "shared by the worker processes (set PERILUNE_REDIS_URL=redis://...)")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url must be redis://, rediss:// or unix://, got {self.redis_url!r}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        names = [p.name for p in self.providers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"providers: duplicate name(s) {sorted(dupes)}")
        if self.database_url and not self.database_url.startswith(("sqlite", "postgresql")):
            raise ValueError(f"database_url must be sqlite:///... or postgresql://..., got {self.database_url!r}")

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_path / 'perilune.db'}"


_FIELDS = {f for f in Settings.__struct_fields__}


def _secret_envs(raw: dict[str, Any]) -> set[str]:
    """Variables the configuration names as holding a secret (``admin_key_env``,
    ``jwt.hs256_secret_env``, ``providers[].api_key_env``): they may start with PERILUNE_ and are
    not settings (e.g. the README's ``hs256_secret_env = "PERILUNE_JWT_SECRET"``)."""
    names = {raw.get("admin_key_env"), (raw.get("jwt") or {}).get("hs256_secret_env")
             if isinstance(raw.get("jwt"), dict) else None}
    providers = raw.get("providers")
    for p in providers if isinstance(providers, list) else ():
        if isinstance(p, dict):
            names.add(p.get("api_key_env"))
    return {n for n in names if isinstance(n, str)}


def _env_overrides(environ: dict[str, str], skip: set[str] | None = None) -> dict[str, Any]:
    """``PERILUNE_PORT=9000`` -> {"port": "9000"}; ``PERILUNE_TIMEOUTS__CONNECT_S`` -> nested."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS or name in (skip or ()):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if path[0] not in _FIELDS:
            raise SettingsError(f"unknown setting {name} (environment); known keys: {', '.join(sorted(_FIELDS))}")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env and explicit overrides, validate."""
    env = dict(os.environ if environ is None else environ)
    config_file = config_file or env.get("PERILUNE_CONFIG") or None
    raw: dict[str, Any] = {}
    if config_file:
        path = Path(config_file).expanduser()
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"config file {path} is not valid TOML: {e}") from None
    raw = _merge(raw, _env_overrides(env, _secret_envs(raw)))
    if overrides:
        raw = _merge(raw, {k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as e:
        raise SettingsError(f"invalid configuration: {_describe(e, raw)}") from None


def _describe(err: msgspec.ValidationError, raw: dict[str, Any]) -> str:
    """Turn msgspec's ``... - at `$.providers[0].type``` into a message naming key and value."""
    msg = str(err)
    if " - at `$." not in msg:
        return msg
    text, path = msg.rsplit(" - at `$.", 1)
    path = path.rstrip("`")
    value: Any = raw
    try:
        for part in path.replace("]", "").replace("[", ".").split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        shown = f" (got {value!r})"
    except (KeyError, IndexError, ValueError, TypeError):
        shown = ""
    return f"{path}: {text}{shown}"
