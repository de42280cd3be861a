"""usage log: effective model, generation time, payloads, rollups, query indexes

Revision ID: 0002
Revises: 0001

- ``usage_records.model``: the model a record is about (served, or requested when nothing was
  served), so filters and group-by use one indexed column instead of an OR over two.
- ``usage_records.generation_ms``: the time the output took to generate (stream: last chunk minus
  first; otherwise the whole upstream time); tokens/s = output_tokens * 1000 / generation_ms.
- ``usage_records.observed``: the request asked for ``"observability": true`` (a payload was stored).
- ``usage_records.sample``: crc32(id) % 1024, a uniform and deterministic sample key; a covering index
  led by it lets SQLite rank a bounded sample for percentiles of very large ranges.
- ``usage_payloads``: request and response bodies of observed requests, one row per record id.
- ``usage_rollups`` / ``usage_rollups_daily``: hourly / daily sums per (account, key, app, model,
  provider, status), written in the same transaction as the records they count; aggregates read them
  instead of scanning the log. Backfilled here from the records already present.
- Indexes serve newest-first listing with cursor pagination on (created_at, id), the filters of the
  query API and the dashboard, and retention deletes by time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ERRORS = sa.text("status >= 400")
INT_SUMS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
            "reasoning_tokens", "estimated", "input_cost_pusd", "output_cost_pusd", "cache_cost_pusd",
            "unit_cost_pusd", "total_cost_pusd", "latency_n", "ttft_n", "gen_tokens")
FLOAT_SUMS = ("latency_sum_ms", "ttft_sum_ms", "gen_ms")
DIMENSIONS = ("bucket", "account_id", "key_id", "app", "model", "provider", "status")
SAMPLE_INDEX = ("sample", "account_id", "created_at", "status", "app", "model", "provider", "key_id",
                "latency_ms", "ttft_ms")
RECORD_INDEXES = {
    "ix_usage_time_id": ["created_at", "id"],
    "ix_usage_account_time_id": ["account_id", "created_at", "id"],
    "ix_usage_key_time": ["key_id", "created_at"],
    "ix_usage_app_time": ["app", "created_at"],
    "ix_usage_model_time": ["model", "created_at"],
    "ix_usage_sample": list(SAMPLE_INDEX),
}
ROLLUPS = {"usage_rollups": 3600, "usage_rollups_daily": 86400}


def _bucket(column: str, size: int, sqlite: bool) -> str:
    if sqlite:
        return f"CAST({column} / {size} AS INTEGER) * {size}.0"
    return f"floor({column} / {size}) * {size}"


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("usage_records", sa.Column("model", sa.String(200), nullable=False, server_default=""))
    op.add_column("usage_records", sa.Column("generation_ms", sa.Float, nullable=True))
    op.add_column("usage_records", sa.Column("observed", sa.Boolean, nullable=False,
                                             server_default=sa.false()))
    op.add_column("usage_records", sa.Column("sample", sa.SmallInteger, nullable=False, server_default="0"))
    op.execute("UPDATE usage_records SET model = CASE WHEN model_served <> '' THEN model_served "
               "ELSE model_requested END, sample = "
               + ("abs(random()) % 1024" if sqlite else "floor(random() * 1024)::int"))
    op.drop_index("ix_usage_account_time", table_name="usage_records")
    op.drop_index("ix_usage_time", table_name="usage_records")
    for name, columns in RECORD_INDEXES.items():
        op.create_index(name, "usage_records", columns)
    op.create_index("ix_usage_errors_time", "usage_records", ["created_at"],
                    sqlite_where=ERRORS, postgresql_where=ERRORS)
    op.create_table(
        "usage_payloads",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("request", sa.Text, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
    )
    op.create_index("ix_usage_payloads_time", "usage_payloads", ["created_at"])
    for table, size in ROLLUPS.items():
        op.create_table(
            table,
            sa.Column("bucket", sa.Float, nullable=False),
            sa.Column("account_id", sa.String(40), nullable=False, server_default=""),
            sa.Column("key_id", sa.String(40), nullable=False, server_default=""),
            sa.Column("app", sa.String(200), nullable=False, server_default=""),
            sa.Column("model", sa.String(200), nullable=False, server_default=""),
            sa.Column("provider", sa.String(100), nullable=False, server_default=""),
            sa.Column("status", sa.Integer, nullable=False),
            *[sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in INT_SUMS],
            *[sa.Column(name, sa.Float, nullable=False, server_default="0") for name in FLOAT_SUMS],
            sa.PrimaryKeyConstraint(*DIMENSIONS, name=f"pk_{table}"),
        )
        op.create_index(f"ix_{table}_account_bucket", table, ["account_id", "bucket"])
        bucket = _bucket("created_at", size, sqlite)
        op.execute(
            f"INSERT INTO {table} ({', '.join(DIMENSIONS + INT_SUMS + FLOAT_SUMS)}) "
            f"SELECT {bucket}, coalesce(account_id, ''), coalesce(key_id, ''), app, model, provider, "
            "status, count(*), "
            + ", ".join(f"coalesce(sum({c}), 0)" for c in INT_SUMS[1:6])
            + ", sum(CASE WHEN estimated THEN 1 ELSE 0 END), "
            + ", ".join(f"coalesce(sum({c}), 0)" for c in INT_SUMS[7:12])
            + ", count(latency_ms), count(ttft_ms), 0, "
            "coalesce(sum(latency_ms), 0), coalesce(sum(ttft_ms), 0), 0 "
            f"FROM usage_records GROUP BY {bucket}, coalesce(account_id, ''), coalesce(key_id, ''), app, "
            "model, provider, status")


def downgrade() -> None:
    for table in ROLLUPS:
        op.drop_index(f"ix_{table}_account_bucket", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_usage_payloads_time", table_name="usage_payloads")
    op.drop_table("usage_payloads")
    op.drop_index("ix_usage_errors_time", table_name="usage_records")
    for name in RECORD_INDEXES:
        op.drop_index(name, table_name="usage_records")
    op.create_index("ix_usage_account_time", "usage_records", ["account_id", "created_at"])
    op.create_index("ix_usage_time", "usage_records", ["created_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("sample")
        batch.drop_column("observed")
        batch.drop_column("generation_ms")
        batch.drop_column("model")
