"""Near-duplicate clustering benchmark: our engine against the textbook MinHash LSH.

Run ``python -m bench.dedup --sizes 1000,10000,100000`` (or ``--quick`` for 1k).
"""
