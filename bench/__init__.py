"""Benchmarks; `bench.corpus` writes the deterministic benchmark site the others measure against."""
