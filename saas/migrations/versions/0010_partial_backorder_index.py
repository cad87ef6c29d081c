"""grants: the backorder index holds only backordered grants

Revision ID: 0010_partial_backorders
Revises: 0009_inbox_without_fks
Create Date: 2026-11-22 08:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_partial_backorders'
down_revision = '0009_inbox_without_fks'
branch_labels = None
depends_on = None

BACKORDERED = sa.text("status = 'backordered'")


def upgrade():
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_backorders')
        batch_op.create_index(
            'ix_grants_backorders',
            ['tenant_id', 'right_id', 'queued_at', 'id'],
            unique=False,
            postgresql_where=BACKORDERED,
            sqlite_where=BACKORDERED,
        )


def downgrade():
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_backorders')
        batch_op.create_index(
            'ix_grants_backorders', ['tenant_id', 'right_id', 'status', 'queued_at'], unique=False
        )
