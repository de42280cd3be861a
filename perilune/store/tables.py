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
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
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
    # 0002_observability
    Column("model", String(200), nullable=False, server_default=""),  # served, else requested
    Column("generation_ms", Float, nullable=True),
    Column("observed", Boolean, nullable=False, server_default=false()),
    Index("ix_usage_time_id", "created_at", "id"),
    Index("ix_usage_account_time_id", "account_id", "created_at", "id"),
    Index("ix_usage_key_time", "key_id", "created_at"),
    Index("ix_usage_app_time", "app", "created_at"),
    Index("ix_usage_model_time", "model", "created_at"),
    Index("ix_usage_provider_time", "provider", "created_at"),
    Index("ix_usage_errors_time", "created_at", sqlite_where=text("status >= 400"),
          postgresql_where=text("status >= 400")),
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
