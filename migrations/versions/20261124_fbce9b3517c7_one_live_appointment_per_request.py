"""One live appointment per intake request: a booking link books once.

A partial unique index (active statuses only), so cancelling frees the request to book again.

Revision ID: fbce9b3517c7
Revises: 4c2fe1719008
Create Date: 2026-11-24 06:31:05.498242

"""

import sqlalchemy as sa
from alembic import op

revision = "fbce9b3517c7"
down_revision = "4c2fe1719008"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')")


def upgrade():
    op.create_index("uq_appointment_request_active", "appointment", ["consultation_request_id"],
                    unique=True, postgresql_where=ACTIVE, sqlite_where=ACTIVE)


def downgrade():
    op.drop_index("uq_appointment_request_active", table_name="appointment")
