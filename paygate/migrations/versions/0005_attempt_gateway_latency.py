"""the gateway latency of each card submission's authorization, for the operator report

Revision ID: 0005_attempt_gateway_latency
Revises: 0004
Create Date: 2026-12-01 15:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_attempt_gateway_latency'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payment_attempts') as batch:
        batch.add_column(sa.Column('gateway_latency_ms', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment_attempts') as batch:
        batch.drop_column('gateway_latency_ms')
