"""paygate core: settings, storage, payment sessions, fraud screening and idempotency.

The domain code here takes its clock, id generator, database sessions and Redis
client as arguments; only :mod:`app` (Flask) and :mod:`paygate.cli` wire them up.
"""
