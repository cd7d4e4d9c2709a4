"""subscriptions; caller-entered amounts, cancel reasons and subscription terms on sessions; voice signals on
attempts; entry mode and MOTO on payments

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_SESSION_COLUMNS = [
    sa.Column('amount_min', sa.BigInteger(), nullable=True),
    sa.Column('amount_max', sa.BigInteger(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=40), nullable=True),
    sa.Column('subscription_interval', sa.String(length=10), nullable=True),
    sa.Column('subscription_interval_count', sa.Integer(), nullable=True),
    sa.Column('subscription_amount', sa.BigInteger(), nullable=True),
    sa.Column('subscription_id', sa.String(length=40), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table('payment_sessions') as batch:
        for column in _SESSION_COLUMNS:
            batch.add_column(column)
        batch.alter_column('amount', existing_type=sa.BigInteger(), nullable=True)
        batch.create_index('ix_payment_sessions_customer_status', ['client_id', 'customer_account_id', 'status'])

    with op.batch_alter_table('payment_attempts') as batch:
        batch.add_column(sa.Column('ani', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('call_id', sa.String(length=200), nullable=True))
        batch.create_index(batch.f('ix_payment_attempts_ani'), ['ani'])

    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('entry_mode', sa.String(length=10), nullable=False, server_default='page'))
        batch.add_column(sa.Column('moto', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index(batch.f('ix_payments_subscription_id'), ['subscription_id'])
    # payments before this revision: merchant-initiated ones charged a stored card; the rest came from the page
    # unless their session's card was keyed by voice
    op.execute("UPDATE payments SET entry_mode = 'stored' WHERE initiator = 'merchant'")
    op.execute("""
        UPDATE payments SET entry_mode = 'dtmf'
        WHERE initiator = 'customer' AND EXISTS (
          SELECT 1 FROM payment_attempts a WHERE a.session_id = payments.session_id
            AND a.outcome = 'approved' AND a.source = 'voice')
    """)

    op.create_table(
        'subscriptions',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('session_id', sa.String(length=40), nullable=True),
        sa.Column('request_key', sa.String(length=80), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('interval', sa.String(length=10), nullable=False),
        sa.Column('interval_count', sa.Integer(), nullable=False),
        sa.Column('anchor_at', sa.DateTime(), nullable=False),
        sa.Column('period', sa.Integer(), nullable=False),
        sa.Column('current_period_start', sa.DateTime(), nullable=True),
        sa.Column('current_period_end', sa.DateTime(), nullable=True),
        sa.Column('next_charge_at', sa.DateTime(), nullable=True),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('last_payment_id', sa.String(length=40), nullable=True),
        sa.Column('pending_key', sa.String(length=200), nullable=True),
        sa.Column('pending_since', sa.DateTime(), nullable=True),
        sa.Column('customer_account_id', sa.String(length=200), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=True),
        sa.Column('participant_id', sa.String(length=200), nullable=True),
        sa.Column('reference', sa.String(length=64), nullable=True),
        sa.Column('cancel_reason', sa.String(length=40), nullable=True),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('callback_url', sa.String(length=2000), nullable=True),
        sa.Column('event_sequence', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('canceled_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id']),
        sa.ForeignKeyConstraint(['session_id'], ['payment_sessions.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id'),
        sa.UniqueConstraint('client_id', 'request_key'),
    )
    op.create_index('ix_subscriptions_client_created', 'subscriptions', ['client_id', 'created_at'])
    op.create_index('ix_subscriptions_due', 'subscriptions', ['status', 'next_charge_at'])
    op.create_index(op.f('ix_subscriptions_status'), 'subscriptions', ['status'])
    op.create_index(op.f('ix_subscriptions_token'), 'subscriptions', ['token'])
    op.create_index(op.f('ix_subscriptions_customer_account_id'), 'subscriptions', ['customer_account_id'])


def downgrade() -> None:
    op.drop_table('subscriptions')
    with op.batch_alter_table('payments') as batch:
        batch.drop_index(batch.f('ix_payments_subscription_id'))
        batch.drop_column('moto')
        batch.drop_column('entry_mode')
    with op.batch_alter_table('payment_attempts') as batch:
        batch.drop_index(batch.f('ix_payment_attempts_ani'))
        batch.drop_column('call_id')
        batch.drop_column('ani')
    with op.batch_alter_table('payment_sessions') as batch:
        batch.drop_index('ix_payment_sessions_customer_status')
        batch.alter_column('amount', existing_type=sa.BigInteger(), nullable=False)
        for column in reversed(_SESSION_COLUMNS):
            batch.drop_column(column.name)
