"""Idempotency records found by age.

Records expire after a day (they keep the first answer, which for a booking holds the patient's
manage link); the beat task that deletes them finds them through this index.

Revision ID: 3b8e5f0a1c64
Revises: f963950af90d
Create Date: 2026-11-25 00:15:00

"""

from alembic import op

revision = "3b8e5f0a1c64"
down_revision = "f963950af90d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(op.f("ix_idempotency_record_created_at"), "idempotency_record", ["created_at"])


def downgrade():
    op.drop_index(op.f("ix_idempotency_record_created_at"), table_name="idempotency_record")
