"""Freed times: the future times appointments gave up, for the waitlist to offer.

A moved appointment keeps its row and holds only its new time, so the time it left is written
down as it moves; cancelling and entering in error write theirs too. Recent cancellations and
entries in error are copied over, so the waitlist keeps offering what it offered before (the
times of moves made before this revision are not known).

Revision ID: f963950af90d
Revises: a3f19c0d7e21
Create Date: 2026-11-24 19:05:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f963950af90d"
down_revision = "a3f19c0d7e21"
branch_labels = None
depends_on = None

# Only times that were still ahead when given up; both backends compare the stored UTC values.
BACKFILL = """
INSERT INTO freed_time (appointment_id, provider_id, appointment_type_id, start_at, end_at,
                        occupied_start, occupied_end, freed_by, freed_at)
SELECT id, provider_id, appointment_type_id, start_at, end_at, occupied_start, occupied_end,
       status, {when}
FROM appointment
WHERE status = '{status}' AND {when} IS NOT NULL AND start_at > {when}
"""


def upgrade():
    op.create_table(
        "freed_time",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("appointment_type_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occupied_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occupied_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("freed_by", sa.String(length=20), nullable=False),
        sa.Column("freed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"], ["appointment.id"],
            name=op.f("fk_freed_time_appointment_id_appointment"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_type_id"], ["appointment_type.id"],
            name=op.f("fk_freed_time_appointment_type_id_appointment_type"),
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["provider.id"], name=op.f("fk_freed_time_provider_id_provider")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freed_time")),
    )
    with op.batch_alter_table("freed_time", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_freed_time_start_at"), ["start_at"], unique=False)
        batch_op.create_index(
            "ix_freed_time_provider_start", ["provider_id", "start_at"], unique=False
        )
    op.execute(BACKFILL.format(status="cancelled", when="cancelled_at"))
    op.execute(BACKFILL.format(status="entered-in-error", when="updated_at"))


def downgrade():
    with op.batch_alter_table("freed_time", schema=None) as batch_op:
        batch_op.drop_index("ix_freed_time_provider_start")
        batch_op.drop_index(batch_op.f("ix_freed_time_start_at"))
    op.drop_table("freed_time")
