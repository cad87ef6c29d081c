"""login attempts: wrong passwords and codes counted per email address, known or not

Revision ID: 0011_login_attempts
Revises: 0010_partial_backorders
Create Date: 2026-12-04 20:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011_login_attempts'
down_revision = '0010_partial_backorders'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'login_attempts',
        sa.Column('email_digest', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.BigInteger(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('email_digest', name=op.f('pk_login_attempts')),
    )
    # The lockout moved off the user row: it now counts per address, known or not.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    op.drop_table('login_attempts')
