"""Benchmarks: our read, reconcile and sweep paths measured against the legacy design and the limit.

`make bench` (`python -m bench`) runs every section on the local stack with its default AWS-like
latencies, prints one table and writes the same figures to `bench/results/latest.json`. Nothing
here is imported by production code (import-linter forbids it); the legacy reconcile-on-read
baseline lives here only to be measured.
"""
