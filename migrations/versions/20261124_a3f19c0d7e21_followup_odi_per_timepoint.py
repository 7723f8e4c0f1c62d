"""Follow-up timepoints say whether they ask the ODI.

The domain spec's plan (2.1) asks the ODI from 6 weeks on; day 1 and day 10 are safety and
wound checks. Each timepoint keeps the plan's choice when it was made, as it keeps whether it
asks the wound questions. Existing day-1 and day-10 timepoints stop asking it.

Revision ID: a3f19c0d7e21
Revises: 5d1e7a9c2b40
Create Date: 2026-11-24 18:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "a3f19c0d7e21"
down_revision = "5d1e7a9c2b40"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("followup_timepoint") as batch:
        batch.add_column(
            sa.Column("odi_questions", sa.Boolean(), nullable=False, server_default=sa.text("true"))
        )
    op.execute(
        "UPDATE followup_timepoint SET odi_questions = false WHERE code IN ('FU-D1', 'FU-D10')"
    )


def downgrade():
    with op.batch_alter_table("followup_timepoint") as batch:
        batch.drop_column("odi_questions")
