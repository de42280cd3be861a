"""stored Responses: the Response objects and their input and output items

Revision ID: 0005
Revises: 0004

- ``responses``: one row per stored Response (``store`` not false), scoped to the account;
- ``response_items``: its input items (with the ids perilune gave them) and output items, in order,
  for ``GET /v1/responses/{id}/input_items``, ``previous_response_id`` and ``item_reference``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_responses_account_time", "responses", ["account_id", "created_at"])
    op.create_table(
        "response_items",
        sa.Column("response_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("id", sa.String(80), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("response_id", "kind", "position", name="pk_response_items"),
    )
    op.create_index("ix_response_items_account_id", "response_items", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_response_items_account_id", table_name="response_items")
    op.drop_table("response_items")
    op.drop_index("ix_responses_account_time", table_name="responses")
    op.drop_table("responses")
