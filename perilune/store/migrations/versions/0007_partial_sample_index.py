"""the sample index covers the records with sample < 128 only

Revision ID: 0007
Revises: 0006

``ix_usage_sample`` (sampled percentiles) is led by a random key, so every record inserted dirtied a
page of it of its own: at a few hundred thousand records it was half of the usage writer's cost
(BENCHMARKS.md). It now holds the eighth of the records whose sample key is below 128, which is enough
for the sample of a large range; smaller ranges are ranked exactly (perilune.store.usage_agg).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = ["sample", "account_id", "created_at", "status", "app", "model", "provider", "key_id",
           "latency_ms", "ttft_ms"]
WHERE = sa.text("sample < 128")


def upgrade() -> None:
    op.drop_index("ix_usage_sample", table_name="usage_records")
    op.create_index("ix_usage_sample", "usage_records", COLUMNS, sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index("ix_usage_sample", table_name="usage_records")
    op.create_index("ix_usage_sample", "usage_records", COLUMNS)
