"""record checkout-link sends on the session

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_sessions') as batch:
        batch.add_column(sa.Column('link_sends', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('link_sent_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('link_sent_to', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('link_messenger_type', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('link_from_address', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('link_message_id', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment_sessions') as batch:
        for name in ('link_message_id', 'link_from_address', 'link_messenger_type', 'link_sent_to',
                     'link_sent_at', 'link_sends'):
            batch.drop_column(name)
