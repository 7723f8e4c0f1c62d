"""Audit events found by the row they are about.

"Who looked at this patient" also lists the views of a request made before it had a patient
(an emergency answer saves the request at once; the patient record comes with the full form).
Those events carry the request's id but no patient id, so they are found by resource.

Revision ID: 5d1e7a9c2b40
Revises: c6d3339c636d
Create Date: 2026-11-24 12:00:00

"""

from alembic import op

revision = "5d1e7a9c2b40"
down_revision = "c6d3339c636d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_audit_event_resource", "audit_event", ["resource_type", "resource_id"])


def downgrade():
    op.drop_index("ix_audit_event_resource", table_name="audit_event")
