"""Local stand-ins for external services used by the tests (in memory, on 127.0.0.1 only).

``stripe_server.FakeStripeServer`` speaks Stripe's v1 wire format for the Stripe gateway adapter.
``genesys.GenesysEmulator`` serves the Genesys emulator (``integrations.genesys.emulator/``, the product's fake of the
Genesys Cloud Platform API) on a real threaded server and reads its state; it re-implements nothing.
"""
