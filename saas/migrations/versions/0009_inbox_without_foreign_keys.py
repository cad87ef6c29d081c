"""webhook inbox: no foreign keys (each insert locked the channel's row; see InboxDelivery)

Revision ID: 0009_inbox_without_fks
Revises: 0008_risk_control
Create Date: 2026-11-22 08:20:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0009_inbox_without_fks'
down_revision = '0008_risk_control'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.drop_constraint('fk_webhook_inbox_tenant_id_channel_id_channels', type_='foreignkey')
        batch_op.drop_constraint('fk_webhook_inbox_tenant_id_tenants', type_='foreignkey')


def downgrade():
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.create_foreign_key(
            'fk_webhook_inbox_tenant_id_tenants', 'tenants', ['tenant_id'], ['id'], ondelete='CASCADE'
        )
        batch_op.create_foreign_key(
            'fk_webhook_inbox_tenant_id_channel_id_channels',
            'channels',
            ['tenant_id', 'channel_id'],
            ['tenant_id', 'id'],
            ondelete='CASCADE',
        )
