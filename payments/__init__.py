"""The payments domain: API clients, payment sessions and card submission, payments and what happens to
them afterwards (capture, void, refunds, disputes), fraud rules and idempotency.

Everything here takes its clock, id factory, database sessions and Redis client as arguments; the
composition root (:mod:`paygate.services`) wires them. It uses the kernel, the card vault and gateways
(:mod:`tokenizer`), the outbox (:mod:`callbacks`) and the Genesys integration (:mod:`integrations`), and is
used by the web app, the worker and the CLI.
"""
