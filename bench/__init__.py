"""webhookd benchmark harness (issue 5): ``make bench``, ``make bench-scale``.

See docs/BENCHMARKS.md.
"""
