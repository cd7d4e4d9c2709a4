"""The kernel: what every other package may use and that uses none of them.

Settings (the environment, read once), the database base and engine, injected time and ids, the error
tree, money in minor units and JSON logging with card-number redaction. Nothing here knows about
sessions, cards, events or Genesys; the layers above are drawn in ``docs/architecture.md``.
"""
