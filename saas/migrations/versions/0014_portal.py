"""portal: sign-in codes for 我的权益, family shares (亲情共享), the plan's family setting, who redeemed

Revision ID: 0014_portal
Revises: 0013_sms
Create Date: 2026-12-06 21:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_portal'
down_revision = '0013_sms'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('portal_codes',
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('transport', sa.String(length=8), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_portal_codes_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_portal_codes'))
    )
    op.create_index('ix_portal_codes_tenant_address', 'portal_codes', ['tenant_id', 'address', 'created_at'], unique=False)
    op.create_index('ix_portal_codes_tenant_ip', 'portal_codes', ['tenant_id', 'ip', 'created_at'], unique=False)
    op.create_table('family_shares',
    sa.Column('owner_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('member_customer_id', sa.BigInteger(), nullable=False),
    sa.Column('member_phone', sa.String(length=32), nullable=False),
    sa.Column('order_line_id', sa.BigInteger(), nullable=False),
    sa.Column('subscription_id', sa.BigInteger(), nullable=True),
    sa.Column('plan_name', sa.String(length=240), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_by', sa.String(length=200), nullable=True),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'member_customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_family_shares_tenant_id_member_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id', 'owner_customer_id'], ['customers.tenant_id', 'customers.id'], name=op.f('fk_family_shares_tenant_id_owner_customer_id_customers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_family_shares_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'id', name=op.f('pk_family_shares'))
    )
    op.create_index('ix_family_shares_tenant_member', 'family_shares', ['tenant_id', 'member_customer_id'], unique=False)
    op.create_index('ix_family_shares_tenant_owner', 'family_shares', ['tenant_id', 'owner_customer_id'], unique=False)
    with op.batch_alter_table('plans') as batch:
        batch.add_column(sa.Column('family_sharing', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('family_max_members', sa.Integer(), nullable=False, server_default='3'))
    with op.batch_alter_table('redemptions') as batch:
        batch.add_column(sa.Column('member_customer_id', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('redemptions') as batch:
        batch.drop_column('member_customer_id')
    with op.batch_alter_table('plans') as batch:
        batch.drop_column('family_max_members')
        batch.drop_column('family_sharing')
    op.drop_index('ix_family_shares_tenant_owner', table_name='family_shares')
    op.drop_index('ix_family_shares_tenant_member', table_name='family_shares')
    op.drop_table('family_shares')
    op.drop_index('ix_portal_codes_tenant_ip', table_name='portal_codes')
    op.drop_index('ix_portal_codes_tenant_address', table_name='portal_codes')
    op.drop_table('portal_codes')
