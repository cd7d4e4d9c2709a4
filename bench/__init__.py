"""Benchmarks: ``python -m bench.run`` starts a private stack on loopback and prints throughput, latency,
callback lag and peak memory figures (see docs/benchmarks.md). Not part of the test suite."""
