"""accounts, api keys and usage records

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("prefix", sa.String(24), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(10), nullable=False, server_default="user"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("app", sa.String(200), nullable=False, server_default="unknown"),
        sa.Column("dialect", sa.String(20), nullable=False),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("model_requested", sa.String(200), nullable=False, server_default=""),
        sa.Column("model_served", sa.String(200), nullable=False, server_default=""),
        sa.Column("provider", sa.String(100), nullable=False, server_default=""),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("stream", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cache_read_tokens", sa.Integer, nullable=True),
        sa.Column("cache_write_tokens", sa.Integer, nullable=True),
        sa.Column("reasoning_tokens", sa.Integer, nullable=True),
        sa.Column("estimated", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("input_cost_pusd", sa.BigInteger, nullable=True),
        sa.Column("output_cost_pusd", sa.BigInteger, nullable=True),
        sa.Column("cache_cost_pusd", sa.BigInteger, nullable=True),
        sa.Column("unit_cost_pusd", sa.BigInteger, nullable=True),
        sa.Column("total_cost_pusd", sa.BigInteger, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("route", sa.Text, nullable=True),
    )
    op.create_index("ix_usage_account_time", "usage_records", ["account_id", "created_at"])
    op.create_index("ix_usage_time", "usage_records", ["created_at"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("api_keys")
    op.drop_table("accounts")
