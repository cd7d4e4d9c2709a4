"""the merchant as customers see it: an API client's display name, support phone and accent colour

Revision ID: 0006_merchant_identity
Revises: 0005_attempt_gateway_latency
Create Date: 2026-12-01 18:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006_merchant_identity'
down_revision = '0005_attempt_gateway_latency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_clients') as batch:
        batch.add_column(sa.Column('display_name', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('support_phone', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('accent_color', sa.String(length=7), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_clients') as batch:
        batch.drop_column('accent_color')
        batch.drop_column('support_phone')
        batch.drop_column('display_name')
