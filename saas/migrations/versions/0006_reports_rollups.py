"""reports: daily rollups of orders, lines, refunds and grants; rollup watermark; grants by delivery time

Revision ID: 0006_reports_rollups
Revises: 0005_integrations
Create Date: 2026-11-22 00:38:27.408738

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_reports_rollups'
down_revision = '0005_integrations'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_daily_grants',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('bundle_id', sa.BigInteger(), nullable=False),
    sa.Column('right_id', sa.BigInteger(), nullable=False),
    sa.Column('delivered', sa.BigInteger(), nullable=False),
    sa.Column('revoked', sa.BigInteger(), nullable=False),
    sa.Column('redeemed', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.BigInteger(), nullable=False),
    sa.Column('redeemed_1h', sa.Integer(), nullable=False),
    sa.Column('redeemed_6h', sa.Integer(), nullable=False),
    sa.Column('redeemed_1d', sa.Integer(), nullable=False),
    sa.Column('redeemed_3d', sa.Integer(), nullable=False),
    sa.Column('redeemed_7d', sa.Integer(), nullable=False),
    sa.Column('redeemed_14d', sa.Integer(), nullable=False),
    sa.Column('redeemed_30d', sa.Integer(), nullable=False),
    sa.Column('redeemed_later', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_daily_grants_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_report_daily_grants')),
    sa.UniqueConstraint('tenant_id', 'day', 'channel', 'bundle_id', 'right_id', name=op.f('uq_report_daily_grants_tenant_id_day_channel_bundle_id_right_id'))
    )

    op.create_table('report_daily_lines',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('bundle_id', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('revenue', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_daily_lines_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_report_daily_lines')),
    sa.UniqueConstraint('tenant_id', 'day', 'channel', 'bundle_id', 'currency', name=op.f('uq_report_daily_lines_tenant_id_day_channel_bundle_id_currency'))
    )

    op.create_table('report_daily_orders',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.Column('revenue', sa.BigInteger(), nullable=False),
    sa.Column('fees', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_daily_orders_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_report_daily_orders')),
    sa.UniqueConstraint('tenant_id', 'day', 'channel', 'currency', name=op.f('uq_report_daily_orders_tenant_id_day_channel_currency'))
    )

    op.create_table('report_daily_refunds',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_daily_refunds_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_report_daily_refunds')),
    sa.UniqueConstraint('tenant_id', 'day', 'channel', 'currency', name=op.f('uq_report_daily_refunds_tenant_id_day_channel_currency'))
    )

    op.create_table('report_rollup_state',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('days_recomputed', sa.BigInteger(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_report_rollup_state_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_report_rollup_state')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_report_rollup_state_tenant_id_name'))
    )

    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.create_index('ix_grants_tenant_delivered', ['tenant_id', 'delivered_at'], unique=False)
        batch_op.create_index(
            'ix_grants_tenant_redeem_time',
            ['tenant_id', 'seconds_to_redeem'],
            unique=False,
            postgresql_include=['delivered_at', 'right_id'],
            postgresql_where=sa.text("redeemed_at IS NOT NULL AND status <> 'revoked' AND seconds_to_redeem IS NOT NULL"),
            sqlite_where=sa.text("redeemed_at IS NOT NULL AND status <> 'revoked' AND seconds_to_redeem IS NOT NULL"),
        )


def downgrade():
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_tenant_redeem_time')
        batch_op.drop_index('ix_grants_tenant_delivered')

    op.drop_table('report_rollup_state')
    op.drop_table('report_daily_refunds')
    op.drop_table('report_daily_orders')
    op.drop_table('report_daily_lines')
    op.drop_table('report_daily_grants')
