"""outbox: deliveries become outbox records, tenant and platform outbox tables; job runs get a lease

Revision ID: 0012_outbox_and_job_leases
Revises: 0011_login_attempts
Create Date: 2026-12-04 20:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_outbox_and_job_leases'
down_revision = '0011_login_attempts'
branch_labels = None
depends_on = None


def outbox_columns():
    return [
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    ]


def stored_message_columns():
    return [
        *outbox_columns(),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('transport', sa.String(length=12), nullable=False),
        sa.Column('recipient', sa.Text(), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('link_kind', sa.String(length=40), nullable=False),
        sa.Column('link_args', sa.JSON(), nullable=False),
    ]


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_deliveries_tenant_status', ['tenant_id', 'status', 'created_at'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('attempts', server_default=None)
        batch_op.alter_column('last_error', server_default=None)
    # Records written before the outbox existed were sent or lost long ago: do not send them now.
    op.execute("UPDATE deliveries SET status = 'sent' WHERE status = 'queued'")

    op.create_table('outbox_messages',
    *stored_message_columns(),
    sa.Column('subject_type', sa.String(length=40), nullable=False),
    sa.Column('subject_id', sa.BigInteger(), nullable=True),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_outbox_messages_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_outbox_messages'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_messages_tenant_status', ['tenant_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_outbox_messages_tenant_subject', ['tenant_id', 'subject_type', 'subject_id'], unique=False)

    op.create_table('platform_messages',
    *stored_message_columns(),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_messages'))
    )
    with op.batch_alter_table('platform_messages', schema=None) as batch_op:
        batch_op.create_index('ix_platform_messages_status', ['status', 'created_at'], unique=False)

    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempt', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('func_path', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('args', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('queue', sa.String(length=20), nullable=False, server_default='default'))
        batch_op.add_column(sa.Column('timeout', sa.Integer(), nullable=False, server_default='3600'))
        batch_op.create_index('ix_job_runs_tenant_status', ['tenant_id', 'status', 'heartbeat_at'], unique=False)
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        for name in ('attempt', 'func_path', 'queue', 'timeout'):
            batch_op.alter_column(name, server_default=None)


def downgrade():
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_tenant_status')
        for name in ('timeout', 'queue', 'args', 'func_path', 'attempt', 'heartbeat_at'):
            batch_op.drop_column(name)
    with op.batch_alter_table('platform_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_platform_messages_status')
    op.drop_table('platform_messages')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_tenant_subject')
        batch_op.drop_index('ix_outbox_messages_tenant_status')
    op.drop_table('outbox_messages')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_tenant_status')
        for name in ('sent_at', 'next_attempt_at', 'claimed_until', 'last_error', 'attempts'):
            batch_op.drop_column(name)
