"""sms: short links for SMS (`/m/<code>` redirects to a signed page)

Revision ID: 0013_sms
Revises: 0012_outbox_and_job_leases
Create Date: 2026-12-04 21:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_sms'
down_revision = '0012_outbox_and_job_leases'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('short_links',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('for_tenant_id', sa.BigInteger(), nullable=True),
    sa.Column('link_kind', sa.String(length=40), nullable=False),
    sa.Column('link_args', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_short_links'))
    )


def downgrade():
    op.drop_table('short_links')
