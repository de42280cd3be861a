"""Table definitions (SQLAlchemy Core). Times are UNIX epoch seconds (float) in UTC; money is integer
pico-USD (1e-12 USD), exact for every list price with up to six decimals per million tokens."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

SAMPLE_INDEX_COLUMNS = ("sample", "account_id", "created_at", "status", "app", "model", "provider", "key_id",
                        "latency_ms", "ttft_ms")
# The sample index holds the records whose sample key is below this (1/8 of them): a covering index led by
# a random key dirties a page per record inserted, so indexing every record cost as much as the rest of
# the insert; 1/8 of them still give a large range its full sample (usage_agg.sample_plan).
SAMPLE_INDEXED = 128
SAMPLE_INDEX_WHERE = f"sample < {SAMPLE_INDEXED}"

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False, server_default="0", index=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
    Column("alert_thresholds", Text, nullable=False, server_default="[]"),  # JSON list of pico-USD
    Column("alert_webhook_url", Text, nullable=True),
)

# Append-only money movements other than per-request charges (those are usage_records.charged_pusd):
# kind is topup, refund or adjustment; amount_pusd is signed (credits positive).
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount_pusd", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_ledger_account_time", "account_id", "created_at"),
    Index("ix_ledger_time", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("prefix", String(24), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("role", String(10), nullable=False, server_default="user"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False, index=True),
    Column("rpm_limit", Integer, nullable=True),
    Column("tpm_limit", Integer, nullable=True),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("account_id", String(40), nullable=True),
    Column("key_id", String(40), nullable=True),
    Column("app", String(200), nullable=False, server_default="unknown"),
    Column("dialect", String(20), nullable=False),
    Column("endpoint", String(40), nullable=False),
    Column("model_requested", String(200), nullable=False, server_default=""),
    Column("model_served", String(200), nullable=False, server_default=""),
    Column("provider", String(100), nullable=False, server_default=""),
    Column("status", Integer, nullable=False),
    Column("error_type", String(100), nullable=True),
    Column("stream", Boolean, nullable=False, server_default="0"),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("cache_read_tokens", Integer, nullable=True),
    Column("cache_write_tokens", Integer, nullable=True),
    Column("reasoning_tokens", Integer, nullable=True),
    Column("estimated", Boolean, nullable=False, server_default="0"),
    Column("input_cost_pusd", BigInteger, nullable=True),
    Column("output_cost_pusd", BigInteger, nullable=True),
    Column("cache_cost_pusd", BigInteger, nullable=True),
    Column("unit_cost_pusd", BigInteger, nullable=True),
    Column("total_cost_pusd", BigInteger, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("ttft_ms", Float, nullable=True),
    Column("route", Text, nullable=True),
    Column("charged_pusd", BigInteger, nullable=True),  # debited from the prepaid balance
    Column("free_tokens", Integer, nullable=True),  # tokens covered by the free tier
    # 0002_observability
    Column("model", String(200), nullable=False, server_default=""),  # served, else requested
    Column("generation_ms", Float, nullable=True),
    Column("observed", Boolean, nullable=False, server_default=false()),
    Column("sample", SmallInteger, nullable=False, server_default="0"),  # crc32(id) % 1024, for sampling
    Index("ix_usage_time_id", "created_at", "id"),
    Index("ix_usage_account_time_id", "account_id", "created_at", "id"),
    Index("ix_usage_key_time", "key_id", "created_at"),
    Index("ix_usage_app_time", "app", "created_at"),
    Index("ix_usage_model_time", "model", "created_at"),
    Index("ix_usage_errors_time", "created_at", sqlite_where=text("status >= 400"),
          postgresql_where=text("status >= 400")),
    # covering index for sampled percentiles: seek by sample key (and account), read without lookups
    Index("ix_usage_sample", *SAMPLE_INDEX_COLUMNS, sqlite_where=text(SAMPLE_INDEX_WHERE),
          postgresql_where=text(SAMPLE_INDEX_WHERE)),
)

# Request/response bodies of requests sent with "observability": true (one row per usage record id).
usage_payloads = Table(
    "usage_payloads",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("request", Text, nullable=True),
    Column("response", Text, nullable=True),
    Index("ix_usage_payloads_time", "created_at"),
)

# Hourly and daily sums of usage_records, kept exactly in step with them (same transaction, only for
# rows that were actually inserted). Aggregates read these instead of scanning the log. Dimension
# columns use "" for "none" so that the primary key (the upsert target) never holds NULL.
ROLLUP_DIMENSIONS = ("bucket", "account_id", "key_id", "app", "model", "provider", "status")
ROLLUP_INT_SUMS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                   "reasoning_tokens", "estimated", "input_cost_pusd", "output_cost_pusd", "cache_cost_pusd",
                   "unit_cost_pusd", "total_cost_pusd", "latency_n", "ttft_n", "gen_tokens")
ROLLUP_FLOAT_SUMS = ("latency_sum_ms", "ttft_sum_ms", "gen_ms")


def _rollup_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("bucket", Float, nullable=False),  # start of the UTC hour (or day)
        Column("account_id", String(40), nullable=False, server_default=""),
        Column("key_id", String(40), nullable=False, server_default=""),
        Column("app", String(200), nullable=False, server_default=""),
        Column("model", String(200), nullable=False, server_default=""),
        Column("provider", String(100), nullable=False, server_default=""),
        Column("status", Integer, nullable=False),  # HTTP status
        *[Column(c, BigInteger, nullable=False, server_default="0") for c in ROLLUP_INT_SUMS],
        *[Column(c, Float, nullable=False, server_default="0") for c in ROLLUP_FLOAT_SUMS],
        PrimaryKeyConstraint(*ROLLUP_DIMENSIONS, name=f"pk_{name}"),
        Index(f"ix_{name}_account_bucket", "account_id", "bucket"),
    )


usage_rollups = _rollup_table("usage_rollups")  # hourly
usage_rollups_daily = _rollup_table("usage_rollups_daily")

# 0006_identities: JWT principals (issuer + subject) linked by an operator to an account. A link is
# never deleted, only marked unlinked, so that every instance's cache learns of the change.
identities = Table(
    "identities",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("issuer", String(500), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("actor", String(200), nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False, index=True),
    Column("unlinked_at", Float, nullable=True),
    Index("ux_identities_issuer_subject", "issuer", "subject", unique=True),
)

# 0006_identities: dashboard sign-ins. The browser holds a random session id; only its SHA-256 is
# stored, with the SHA-256 of the key that signed in (re-checked on every page, so a revoked key
# ends its sessions). Logout deletes the row.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# 0004_feedback: quality scores on logged requests (POST /v1/feedback) and the decisions of routed requests
request_feedback = Table(
    "request_feedback",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("account_id", String(40), nullable=True),
    Column("score", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_request_feedback_updated", "updated_at"),
)

router_decisions = Table(
    "router_decisions",
    metadata,
    Column("request_id", String(40), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("decision", Text, nullable=False),
    Index("ix_router_decisions_time", "created_at"),
)

# Stored Responses (POST /v1/responses with store not false): the Response object as the client got it,
# and its items (input items with the ids perilune gave them, then output items) for input_items,
# previous_response_id and item_reference. Scoped to the account that created them.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(40), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("model", String(200), nullable=False, server_default=""),
    Column("previous_response_id", String(64), nullable=True),
    Column("body", Text, nullable=False),  # the Response object (JSON)
    Index("ix_responses_account_time", "account_id", "created_at"),
)

response_items = Table(
    "response_items",
    metadata,
    Column("response_id", String(64), nullable=False),
    Column("kind", String(6), nullable=False),  # "input" | "output"
    Column("position", Integer, nullable=False),
    Column("id", String(80), nullable=False),  # the item's id
    Column("account_id", String(40), nullable=False),
    Column("item", Text, nullable=False),  # the item (JSON)
    PrimaryKeyConstraint("response_id", "kind", "position", name="pk_response_items"),
    Index("ix_response_items_account_id", "account_id", "id"),
)
