"""Benchmarks run by ``make bench`` (``python -m benchmarks``), never by pytest."""
