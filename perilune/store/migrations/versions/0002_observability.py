"""usage log: effective model, generation time, observability payloads, query indexes

Revision ID: 0002
Revises: 0001

- ``usage_records.model``: the model a record is about (served, or requested when nothing was
  served), so filters and group-by use one indexed column instead of an OR over two.
- ``usage_records.generation_ms``: the time the output took to generate (stream: last chunk minus
  first; otherwise the whole upstream time); tokens/s = output_tokens * 1000 / generation_ms.
- ``usage_records.observed``: the request asked for ``"observability": true`` (a payload was stored).
- ``usage_payloads``: request and response bodies of observed requests, one row per record id.
- Indexes serve "newest first" listing with cursor pagination on (created_at, id), the filters of the
  query API and the dashboard, and retention deletes by time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ERRORS = sa.text("status >= 400")


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("model", sa.String(200), nullable=False, server_default=""))
    op.add_column("usage_records", sa.Column("generation_ms", sa.Float, nullable=True))
    op.add_column("usage_records", sa.Column("observed", sa.Boolean, nullable=False,
                                             server_default=sa.false()))
    op.execute("UPDATE usage_records SET model = CASE WHEN model_served <> '' THEN model_served "
               "ELSE model_requested END")
    op.drop_index("ix_usage_account_time", table_name="usage_records")
    op.drop_index("ix_usage_time", table_name="usage_records")
    op.create_index("ix_usage_time_id", "usage_records", ["created_at", "id"])
    op.create_index("ix_usage_account_time_id", "usage_records", ["account_id", "created_at", "id"])
    op.create_index("ix_usage_key_time", "usage_records", ["key_id", "created_at"])
    op.create_index("ix_usage_app_time", "usage_records", ["app", "created_at"])
    op.create_index("ix_usage_model_time", "usage_records", ["model", "created_at"])
    op.create_index("ix_usage_provider_time", "usage_records", ["provider", "created_at"])
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


def downgrade() -> None:
    op.drop_index("ix_usage_payloads_time", table_name="usage_payloads")
    op.drop_table("usage_payloads")
    for name in ("ix_usage_errors_time", "ix_usage_provider_time", "ix_usage_model_time", "ix_usage_app_time",
                 "ix_usage_key_time", "ix_usage_account_time_id", "ix_usage_time_id"):
        op.drop_index(name, table_name="usage_records")
    op.create_index("ix_usage_account_time", "usage_records", ["account_id", "created_at"])
    op.create_index("ix_usage_time", "usage_records", ["created_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("observed")
        batch.drop_column("generation_ms")
        batch.drop_column("model")
