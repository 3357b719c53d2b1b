"""Benchmarks: latency and throughput per backend (``run``), against the
machine's measured peak (``peak``) and through a local server (``serving``).
"""
