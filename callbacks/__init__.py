"""Signed outbound callbacks (contract §5): events, the outbox, delivery with retries, and the worker.

Modules:

- :mod:`callbacks.events` — event type names and the exact JSON body of an event.
- :mod:`callbacks.signing` — the ``Paygate-Signature`` header (HMAC-SHA256, Stripe's scheme) and its verifier.
- :mod:`callbacks.retry` — the pure retry policy (what is retried, backoff with jitter, maximum age).
- :mod:`callbacks.outbox` — writing events and their deliveries in the caller's transaction, redelivery, views.
- :mod:`callbacks.delivery` — claiming due deliveries under a lease and sending them.
- :mod:`paygate.worker` — the long-running process (``python -m paygate.worker`` / ``paygate worker``).

Nothing here imports Flask.
"""
