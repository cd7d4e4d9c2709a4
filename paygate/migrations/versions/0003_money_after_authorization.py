"""payments as first-class objects, refunds, disputes, inbound webhook events; events numbered per root

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_PAYMENT_COLUMNS = [
    sa.Column('client_id', sa.String(length=40), nullable=True),
    sa.Column('request_key', sa.String(length=80), nullable=True),
    sa.Column('initiator', sa.String(length=20), nullable=False, server_default='customer'),
    sa.Column('intent', sa.String(length=20), nullable=False, server_default='payment'),
    sa.Column('amount_capturable', sa.BigInteger(), nullable=False, server_default='0'),
    sa.Column('amount_captured', sa.BigInteger(), nullable=False, server_default='0'),
    sa.Column('amount_refunded', sa.BigInteger(), nullable=False, server_default='0'),
    sa.Column('card_brand', sa.String(length=20), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('card_exp_month', sa.Integer(), nullable=True),
    sa.Column('card_exp_year', sa.Integer(), nullable=True),
    sa.Column('card_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('gateway_key', sa.String(length=200), nullable=True),
    sa.Column('capture_before', sa.DateTime(), nullable=True),
    sa.Column('hold_expiring_sent', sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column('conversation_id', sa.String(length=200), nullable=True),
    sa.Column('participant_id', sa.String(length=200), nullable=True),
    sa.Column('customer_account_id', sa.String(length=200), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('subscription_id', sa.String(length=40), nullable=True),
    sa.Column('dispute_id', sa.String(length=40), nullable=True),
    sa.Column('decline_code', sa.String(length=60), nullable=True),
    sa.Column('message', sa.String(length=300), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('callback_url', sa.String(length=2000), nullable=True),
    sa.Column('event_sequence', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('pending_operation', sa.String(length=20), nullable=True),
    sa.Column('pending_amount', sa.BigInteger(), nullable=True),
    sa.Column('pending_key', sa.String(length=200), nullable=True),
    sa.Column('pending_since', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        for column in _PAYMENT_COLUMNS:
            batch.add_column(column)

    # payments made before this revision all came from sessions: copy what the payment view needs
    op.execute("""
        UPDATE payments SET
          client_id = (SELECT s.client_id FROM payment_sessions s WHERE s.id = payments.session_id),
          intent = (SELECT s.intent FROM payment_sessions s WHERE s.id = payments.session_id),
          card_brand = (SELECT s.card_brand FROM payment_sessions s WHERE s.id = payments.session_id),
          card_last4 = (SELECT s.card_last4 FROM payment_sessions s WHERE s.id = payments.session_id),
          card_exp_month = (SELECT s.card_exp_month FROM payment_sessions s WHERE s.id = payments.session_id),
          card_exp_year = (SELECT s.card_exp_year FROM payment_sessions s WHERE s.id = payments.session_id),
          card_fingerprint = (SELECT s.card_fingerprint FROM payment_sessions s WHERE s.id = payments.session_id),
          conversation_id = (SELECT s.conversation_id FROM payment_sessions s WHERE s.id = payments.session_id),
          participant_id = (SELECT s.participant_id FROM payment_sessions s WHERE s.id = payments.session_id),
          customer_account_id = (SELECT s.customer_account_id FROM payment_sessions s
                                 WHERE s.id = payments.session_id),
          reference = (SELECT s.reference FROM payment_sessions s WHERE s.id = payments.session_id),
          amount_captured = CASE WHEN status = 'captured' THEN amount ELSE 0 END,
          amount_capturable = CASE WHEN status = 'authorized' THEN amount ELSE 0 END,
          message = 'Payment approved.',
          updated_at = created_at
    """)
    op.execute("UPDATE payments SET metadata = '{}' WHERE metadata IS NULL")

    with op.batch_alter_table('payments') as batch:
        batch.alter_column('client_id', existing_type=sa.String(length=40), nullable=False)
        batch.alter_column('session_id', existing_type=sa.String(length=40), nullable=True)
        batch.alter_column('metadata', existing_type=sa.JSON(), nullable=False)
        batch.alter_column('updated_at', existing_type=sa.DateTime(), nullable=False)
        batch.alter_column('initiator', existing_type=sa.String(length=20), server_default=None)
        batch.alter_column('intent', existing_type=sa.String(length=20), server_default=None)
        batch.alter_column('amount_capturable', existing_type=sa.BigInteger(), server_default=None)
        batch.alter_column('amount_captured', existing_type=sa.BigInteger(), server_default=None)
        batch.alter_column('amount_refunded', existing_type=sa.BigInteger(), server_default=None)
        batch.alter_column('hold_expiring_sent', existing_type=sa.Boolean(), server_default=None)
        batch.alter_column('event_sequence', existing_type=sa.Integer(), server_default=None)
        batch.create_foreign_key('fk_payments_client_id', 'api_clients', ['client_id'], ['id'])
        batch.create_unique_constraint('uq_payments_client_request_key', ['client_id', 'request_key'])
        batch.create_index('ix_payments_client_created', ['client_id', 'created_at'])
        batch.create_index('ix_payments_hold_due', ['status', 'capture_before'])
        batch.create_index(batch.f('ix_payments_status'), ['status'])
        batch.create_index(batch.f('ix_payments_token'), ['token'])
        batch.create_index(batch.f('ix_payments_gateway_reference'), ['gateway_reference'])
        batch.create_index(batch.f('ix_payments_conversation_id'), ['conversation_id'])

    with op.batch_alter_table('vault_cards') as batch:
        batch.add_column(sa.Column('gateway_customer', sa.String(length=100), nullable=True))

    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('root_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('object', sa.String(length=20), nullable=False,
                                   server_default='payment_session'))
    op.execute("UPDATE events SET root_id = session_id WHERE root_id IS NULL")
    with op.batch_alter_table('events') as batch:
        batch.create_index(batch.f('ix_events_root_id'), ['root_id'])
        batch.create_unique_constraint('uq_events_root_sequence', ['root_id', 'sequence'])

    op.create_table(
        'refunds',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('payment_id', sa.String(length=40), nullable=False),
        sa.Column('dedupe_key', sa.String(length=80), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=True),
        sa.Column('disposition_code', sa.String(length=200), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=True),
        sa.Column('participant_id', sa.String(length=200), nullable=True),
        sa.Column('reference', sa.String(length=64), nullable=True),
        sa.Column('failure_code', sa.String(length=60), nullable=True),
        sa.Column('manual_review', sa.String(length=20), nullable=False),
        sa.Column('review_disposition', sa.String(length=60), nullable=True),
        sa.Column('review_note', sa.String(length=1000), nullable=True),
        sa.Column('gateway_reference', sa.String(length=100), nullable=True),
        sa.Column('gateway_key', sa.String(length=200), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('callback_url', sa.String(length=2000), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id']),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_refunds_client_created', 'refunds', ['client_id', 'created_at'])
    op.create_index(op.f('ix_refunds_payment_id'), 'refunds', ['payment_id'])
    op.create_index(op.f('ix_refunds_status'), 'refunds', ['status'])
    op.create_index(op.f('ix_refunds_conversation_id'), 'refunds', ['conversation_id'])
    op.create_index(op.f('ix_refunds_manual_review'), 'refunds', ['manual_review'])
    op.create_index(op.f('ix_refunds_gateway_reference'), 'refunds', ['gateway_reference'])

    op.create_table(
        'disputes',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('payment_id', sa.String(length=40), nullable=False),
        sa.Column('gateway_reference', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=40), nullable=False),
        sa.Column('reason', sa.String(length=60), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('evidence_due_by', sa.DateTime(), nullable=True),
        sa.Column('conversation_id', sa.String(length=200), nullable=True),
        sa.Column('customer_account_id', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id']),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('gateway_reference'),
    )
    op.create_index('ix_disputes_client_created', 'disputes', ['client_id', 'created_at'])
    op.create_index(op.f('ix_disputes_payment_id'), 'disputes', ['payment_id'])
    op.create_index(op.f('ix_disputes_status'), 'disputes', ['status'])

    op.create_table(
        'gateway_webhook_events',
        sa.Column('id', sa.String(length=100), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('gateway_webhook_events')
    op.drop_table('disputes')
    op.drop_table('refunds')
    with op.batch_alter_table('events') as batch:
        batch.drop_constraint('uq_events_root_sequence', type_='unique')
        batch.drop_index(batch.f('ix_events_root_id'))
        batch.drop_column('object')
        batch.drop_column('root_id')
    with op.batch_alter_table('vault_cards') as batch:
        batch.drop_column('gateway_customer')
    with op.batch_alter_table('payments') as batch:
        for name in ('ix_payments_conversation_id', 'ix_payments_gateway_reference', 'ix_payments_token',
                     'ix_payments_status', 'ix_payments_hold_due', 'ix_payments_client_created'):
            batch.drop_index(name)
        batch.drop_constraint('uq_payments_client_request_key', type_='unique')
        batch.drop_constraint('fk_payments_client_id', type_='foreignkey')
        for column in reversed(_PAYMENT_COLUMNS):
            batch.drop_column(column.name)
