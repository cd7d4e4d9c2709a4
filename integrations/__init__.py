"""Integrations with outside platforms (today Genesys Cloud CX), above the outbox and below the domain."""
