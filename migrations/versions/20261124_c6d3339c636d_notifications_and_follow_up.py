"""Notifications and the post-procedure follow-up.

Messages are rows (one per cause, kind and revision) with partial indexes holding only pending
rows (the dispatcher's claim) and sending rows (stale-claim release), so their cost does not grow
with the millions of sent or future rows. Procedures, their follow-up timepoints, check-ins,
staff tasks and automation pauses (at most one open pause per patient).

Revision ID: c6d3339c636d
Revises: fbce9b3517c7
Create Date: 2026-11-24 07:02:26.460286

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c6d3339c636d'
down_revision = 'fbce9b3517c7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('dispatcher_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed', sa.Integer(), nullable=False),
    sa.Column('released', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatcher_run'))
    )
    op.create_table('email_suppression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_suppression')),
    sa.UniqueConstraint('address', name=op.f('uq_email_suppression_address'))
    )
    op.create_table('notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('template', sa.String(length=60), nullable=False),
    sa.Column('cause_type', sa.String(length=30), nullable=False),
    sa.Column('cause_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('routine', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_notification_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification')),
    sa.UniqueConstraint('cause_type', 'cause_id', 'kind', 'revision', name=op.f('uq_notification_cause_type')),
    sa.UniqueConstraint('message_id', name=op.f('uq_notification_message_id'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_patient', ['patient_id', 'due_at'], unique=False)
        batch_op.create_index('ix_notification_pending_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_notification_sending', ['claimed_at'], unique=False, postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.create_index('ix_notification_status_updated', ['status', 'updated_at'], unique=False)

    op.create_table('staff_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('cause_type', sa.String(length=30), nullable=True),
    sa.Column('cause_id', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['done_by_id'], ['staff_user.id'], name=op.f('fk_staff_task_done_by_id_staff_user')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_staff_task_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_task'))
    )
    with op.batch_alter_table('staff_task', schema=None) as batch_op:
        batch_op.create_index('ix_staff_task_open', ['due_at'], unique=False, postgresql_where=sa.text('done_at IS NULL'), sqlite_where=sa.text('done_at IS NULL'))
        batch_op.create_index(batch_op.f('ix_staff_task_patient_id'), ['patient_id'], unique=False)

    op.create_table('procedure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('performed_on', sa.Date(), nullable=False),
    sa.Column('plan_version', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_procedure_patient_id_patient')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_procedure_provider_id_provider')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['staff_user.id'], name=op.f('fk_procedure_recorded_by_id_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procedure'))
    )
    with op.batch_alter_table('procedure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_procedure_patient_id'), ['patient_id'], unique=False)

    op.create_table('followup_timepoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procedure_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('label', sa.String(length=60), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('window_start', sa.Date(), nullable=False),
    sa.Column('window_end', sa.Date(), nullable=False),
    sa.Column('wound_questions', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_followup_timepoint_patient_id_patient')),
    sa.ForeignKeyConstraint(['procedure_id'], ['procedure.id'], name=op.f('fk_followup_timepoint_procedure_id_procedure')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followup_timepoint'))
    )
    with op.batch_alter_table('followup_timepoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_timepoint_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_followup_timepoint_procedure_id'), ['procedure_id'], unique=False)

    op.create_table('checkin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('timepoint_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('form_version', sa.String(length=40), nullable=False),
    sa.Column('scoring_version', sa.String(length=40), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('red_flags', sa.JSON(), nullable=False),
    sa.Column('triage', sa.String(length=12), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('responders', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_checkin_patient_id_patient')),
    sa.ForeignKeyConstraint(['timepoint_id'], ['followup_timepoint.id'], name=op.f('fk_checkin_timepoint_id_followup_timepoint')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkin'))
    )
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkin_patient_id'), ['patient_id'], unique=False)

    op.create_table('automation_pause',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('checkin_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['staff_user.id'], name=op.f('fk_automation_pause_acknowledged_by_id_staff_user')),
    sa.ForeignKeyConstraint(['checkin_id'], ['checkin.id'], name=op.f('fk_automation_pause_checkin_id_checkin')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_automation_pause_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_pause'))
    )
    with op.batch_alter_table('automation_pause', schema=None) as batch_op:
        batch_op.create_index('uq_automation_pause_open', ['patient_id'], unique=True, postgresql_where=sa.text('acknowledged_at IS NULL'), sqlite_where=sa.text('acknowledged_at IS NULL'))



def downgrade():
    with op.batch_alter_table('automation_pause', schema=None) as batch_op:
        batch_op.drop_index('uq_automation_pause_open', postgresql_where=sa.text('acknowledged_at IS NULL'), sqlite_where=sa.text('acknowledged_at IS NULL'))

    op.drop_table('automation_pause')
    with op.batch_alter_table('checkin', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkin_patient_id'))

    op.drop_table('checkin')
    with op.batch_alter_table('followup_timepoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_timepoint_procedure_id'))
        batch_op.drop_index(batch_op.f('ix_followup_timepoint_patient_id'))

    op.drop_table('followup_timepoint')
    with op.batch_alter_table('procedure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_procedure_patient_id'))

    op.drop_table('procedure')
    with op.batch_alter_table('staff_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_task_patient_id'))
        batch_op.drop_index('ix_staff_task_open', postgresql_where=sa.text('done_at IS NULL'), sqlite_where=sa.text('done_at IS NULL'))

    op.drop_table('staff_task')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_status_updated')
        batch_op.drop_index('ix_notification_sending', postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.drop_index('ix_notification_pending_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_notification_patient')

    op.drop_table('notification')
    op.drop_table('email_suppression')
    op.drop_table('dispatcher_run')
