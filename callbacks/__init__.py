"""Signed outbound callbacks (docs/api.md, "Events"): events, the outbox and its tables, delivery with retries.

Modules:

- :mod:`callbacks.events` — event type names and the exact JSON body of an event.
- :mod:`callbacks.models` — the outbox's tables (events, deliveries, delivery attempts).
- :mod:`callbacks.signing` — the ``Paygate-Signature`` header (HMAC-SHA256, Stripe's scheme) and its verifier.
- :mod:`callbacks.retry` — the pure retry policy (what is retried, backoff with jitter, maximum age).
- :mod:`callbacks.outbox` — writing events and their deliveries in the caller's transaction, redelivery, views.
- :mod:`callbacks.delivery` — claiming due deliveries under a lease and sending them.

The long-running process that runs the delivery loop is :mod:`paygate.worker`. Nothing here imports Flask,
and nothing here knows sessions, payments or API clients: the domain passes destinations and the composition
root supplies signing secrets.
"""
