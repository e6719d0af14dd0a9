"""Benchmarks of the pipeline against the read-and-decode ceiling and two peers (issue #5).

``python -m bench.run`` produces one seeded workload and runs every measurement on it.
"""
