"""Scheduling: locations, providers and their hours, appointment types, appointments.

No double booking, enforced by the database: an exclusion constraint on PostgreSQL
(btree_gist; provider and occupied range, active statuses only) and, on SQLite, triggers that
refuse an overlapping active row (SQLite has one writer at a time, so the check cannot race).

Revision ID: 4c2fe1719008
Revises: 8ae9d994a408
Create Date: 2026-11-24 05:49:08.064384

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '4c2fe1719008'
down_revision = '8ae9d994a408'
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('appointment_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_before_minutes', sa.Integer(), nullable=False),
    sa.Column('buffer_after_minutes', sa.Integer(), nullable=False),
    sa.Column('step_minutes', sa.Integer(), nullable=False),
    sa.Column('min_notice_minutes', sa.Integer(), nullable=False),
    sa.Column('horizon_days', sa.Integer(), nullable=False),
    sa.Column('daily_cap', sa.Integer(), nullable=True),
    sa.Column('patient_bookable', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_type')),
    sa.UniqueConstraint('code', name=op.f('uq_appointment_type_code'))
    )
    op.create_table('idempotency_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('endpoint', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_record')),
    sa.UniqueConstraint('key', 'endpoint', name=op.f('uq_idempotency_record_key'))
    )
    op.create_table('location',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('address_line1', sa.String(length=200), nullable=False),
    sa.Column('address_line2', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=2), nullable=False),
    sa.Column('zip', sa.String(length=10), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_location'))
    )
    op.create_table('clinic_closure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_clinic_closure_location_id_location')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_closure')),
    sa.UniqueConstraint('location_id', 'day', name=op.f('uq_clinic_closure_location_id'))
    )
    op.create_table('provider',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=60), nullable=False),
    sa.Column('staff_user_id', sa.Integer(), nullable=True),
    sa.Column('feed_token', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_user.id'], name=op.f('fk_provider_staff_user_id_staff_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider')),
    sa.UniqueConstraint('feed_token', name=op.f('uq_provider_feed_token'))
    )
    op.create_table('appointment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('appointment_type_id', sa.Integer(), nullable=False),
    sa.Column('consultation_request_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('occupied_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('occupied_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_type_id'], ['appointment_type.id'], name=op.f('fk_appointment_appointment_type_id_appointment_type')),
    sa.ForeignKeyConstraint(['cancelled_by_id'], ['staff_user.id'], name=op.f('fk_appointment_cancelled_by_id_staff_user')),
    sa.ForeignKeyConstraint(['consultation_request_id'], ['consultation_request.id'], name=op.f('fk_appointment_consultation_request_id_consultation_request')),
    sa.ForeignKeyConstraint(['created_by_id'], ['staff_user.id'], name=op.f('fk_appointment_created_by_id_staff_user')),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_appointment_location_id_location')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_appointment_patient_id_patient')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_appointment_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment'))
    )
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_appointment_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_appointment_provider_start', ['provider_id', 'start_at'], unique=False)
        batch_op.create_index('ix_appointment_start', ['start_at'], unique=False)

    op.create_table('provider_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_provider_hours_location_id_location')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_provider_hours_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_hours'))
    )
    with op.batch_alter_table('provider_hours', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_hours_provider_id'), ['provider_id'], unique=False)

    op.create_table('schedule_exception',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=True),
    sa.Column('end_time', sa.Time(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], name=op.f('fk_schedule_exception_location_id_location')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_schedule_exception_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_exception'))
    )
    with op.batch_alter_table('schedule_exception', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_exception_provider_id'), ['provider_id'], unique=False)

    op.create_table('time_off',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_time_off_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_time_off'))
    )
    with op.batch_alter_table('time_off', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_time_off_provider_id'), ['provider_id'], unique=False)

    op.create_table('waitlist_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('appointment_type_id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointment.id'], name=op.f('fk_waitlist_entry_appointment_id_appointment')),
    sa.ForeignKeyConstraint(['appointment_type_id'], ['appointment_type.id'], name=op.f('fk_waitlist_entry_appointment_type_id_appointment_type')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_waitlist_entry_patient_id_patient')),
    sa.ForeignKeyConstraint(['provider_id'], ['provider.id'], name=op.f('fk_waitlist_entry_provider_id_provider')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entry'))
    )
    with op.batch_alter_table('waitlist_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_waitlist_entry_patient_id'), ['patient_id'], unique=False)




    _create_booking_guard()


ACTIVE = "('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')"

EXCLUSION_PG = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE appointment ADD CONSTRAINT ex_appointment_no_double_booking
    EXCLUDE USING gist (
        provider_id WITH =,
        tstzrange(occupied_start, occupied_end, '[)') WITH &&
    ) WHERE (status IN {ACTIVE});
ALTER TABLE appointment ADD CONSTRAINT ck_appointment_occupied_range
    CHECK (occupied_start < occupied_end AND occupied_start <= start_at AND end_at <= occupied_end);
"""

# SQLite compares the ISO strings SQLAlchemy stores; all are UTC with the same format.
_OVERLAP_SQLITE = f"""
    SELECT RAISE(ABORT, 'slot_unavailable: appointment overlaps another')
    WHERE NEW.status IN {ACTIVE} AND EXISTS (
        SELECT 1 FROM appointment a
        WHERE a.provider_id = NEW.provider_id AND a.id IS NOT NEW.id
          AND a.status IN {ACTIVE}
          AND a.occupied_start < NEW.occupied_end AND NEW.occupied_start < a.occupied_end
    );
"""
GUARD_SQLITE = [
    f"CREATE TRIGGER appointment_no_double_booking_insert BEFORE INSERT ON appointment "
    f"BEGIN {_OVERLAP_SQLITE} END",
    f"CREATE TRIGGER appointment_no_double_booking_update BEFORE UPDATE OF provider_id, "
    f"occupied_start, occupied_end, status ON appointment BEGIN {_OVERLAP_SQLITE} END",
]


def _create_booking_guard():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EXCLUSION_PG)
    else:
        for statement in GUARD_SQLITE:
            op.execute(statement)


def _drop_booking_guard():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE appointment DROP CONSTRAINT ex_appointment_no_double_booking")
        op.execute("ALTER TABLE appointment DROP CONSTRAINT ck_appointment_occupied_range")
    else:
        op.execute("DROP TRIGGER appointment_no_double_booking_insert")
        op.execute("DROP TRIGGER appointment_no_double_booking_update")


def downgrade():
    _drop_booking_guard()
    
    with op.batch_alter_table('waitlist_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_waitlist_entry_patient_id'))

    op.drop_table('waitlist_entry')
    with op.batch_alter_table('time_off', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_time_off_provider_id'))

    op.drop_table('time_off')
    with op.batch_alter_table('schedule_exception', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_exception_provider_id'))

    op.drop_table('schedule_exception')
    with op.batch_alter_table('provider_hours', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_hours_provider_id'))

    op.drop_table('provider_hours')
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.drop_index('ix_appointment_start')
        batch_op.drop_index('ix_appointment_provider_start')
        batch_op.drop_index(batch_op.f('ix_appointment_patient_id'))

    op.drop_table('appointment')
    op.drop_table('provider')
    op.drop_table('clinic_closure')
    op.drop_table('location')
    op.drop_table('idempotency_record')
    op.drop_table('appointment_type')

