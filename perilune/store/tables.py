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
    Index("ix_usage_account_time", "account_id", "created_at"),
    Index("ix_usage_time", "created_at"),
)
