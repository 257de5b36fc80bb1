"""Reliability tests: kill -9 during writes (T1), fsync ordering (T2), stateful model (T7)."""
