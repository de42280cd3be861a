"""identities (JWT issuer + subject linked to an account) and server-side dashboard sessions

Revision ID: 0006
Revises: 0005

- ``identities``: an operator's explicit link from a JWT principal (issuer, subject) to an account;
  unlinking sets ``unlinked_at`` (rows stay so that every instance's cache sees the change).
- ``dashboard_sessions``: the SHA-256 of each dashboard session id, the SHA-256 of the key that
  signed in, and when the session expires. Logout deletes the row.

(Written beside 0004 and 0005 on other branches; chained after 0005 when merged.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("unlinked_at", sa.Float, nullable=True),
    )
    op.create_index("ux_identities_issuer_subject", "identities", ["issuer", "subject"], unique=True)
    op.create_index("ix_identities_account_id", "identities", ["account_id"])
    op.create_index("ix_identities_updated_at", "identities", ["updated_at"])
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dashboard_sessions_key_hash", "dashboard_sessions", ["key_hash"])
    op.create_index("ix_dashboard_sessions_expires_at", "dashboard_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
    op.drop_table("identities")
