"""prepaid balances: ledger, limits, alert settings, charges on usage records

Revision ID: 0003
Revises: 0002

- ``ledger_entries``: append-only top-ups, refunds and adjustments (signed integer pico-USD) with who
  and why. Charges are the usage records themselves (``usage_records.charged_pusd``), written once
  per request id, so balance = sum(ledger_entries.amount_pusd) - sum(usage_records.charged_pusd).
- rate limits (requests and tokens per minute) on keys and accounts; low-balance alert settings on
  accounts; ``accounts.updated_at`` so every instance can pick up changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amount_pusd", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_ledger_account_time", "ledger_entries", ["account_id", "created_at"])
    op.create_index("ix_ledger_time", "ledger_entries", ["created_at"])
    with op.batch_alter_table("accounts") as b:
        b.add_column(sa.Column("updated_at", sa.Float, nullable=False, server_default="0"))
        b.add_column(sa.Column("rpm_limit", sa.Integer, nullable=True))
        b.add_column(sa.Column("tpm_limit", sa.Integer, nullable=True))
        b.add_column(sa.Column("alert_thresholds", sa.Text, nullable=False, server_default="[]"))
        b.add_column(sa.Column("alert_webhook_url", sa.Text, nullable=True))
    op.create_index("ix_accounts_updated_at", "accounts", ["updated_at"])
    with op.batch_alter_table("api_keys") as b:
        b.add_column(sa.Column("rpm_limit", sa.Integer, nullable=True))
        b.add_column(sa.Column("tpm_limit", sa.Integer, nullable=True))
    with op.batch_alter_table("usage_records") as b:
        b.add_column(sa.Column("charged_pusd", sa.BigInteger, nullable=True))
        b.add_column(sa.Column("free_tokens", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as b:
        b.drop_column("free_tokens")
        b.drop_column("charged_pusd")
    with op.batch_alter_table("api_keys") as b:
        b.drop_column("tpm_limit")
        b.drop_column("rpm_limit")
    op.drop_index("ix_accounts_updated_at", table_name="accounts")
    with op.batch_alter_table("accounts") as b:
        for c in ("alert_webhook_url", "alert_thresholds", "tpm_limit", "rpm_limit", "updated_at"):
            b.drop_column(c)
    op.drop_table("ledger_entries")
