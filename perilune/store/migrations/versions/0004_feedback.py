"""router: quality feedback on logged requests, and the routing decision of routed requests

Revision ID: 0004
Revises: 0003

- ``request_feedback``: one quality score in [0, 1] per logged request (``POST /v1/feedback``; a
  second score for the same request replaces the first). ``perilune router build --from-feedback``
  reads it with the stored prompt and the served model to rebuild router profiles.
- ``router_decisions``: the decision (candidates, scores, cluster, embedder) of a request that
  ``POST /v1/router`` executed, shown in the dashboard's log detail.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_feedback",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_request_feedback_updated", "request_feedback", ["updated_at"])
    op.create_table(
        "router_decisions",
        sa.Column("request_id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
    )
    op.create_index("ix_router_decisions_time", "router_decisions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_router_decisions_time", table_name="router_decisions")
    op.drop_table("router_decisions")
    op.drop_index("ix_request_feedback_updated", table_name="request_feedback")
    op.drop_table("request_feedback")
