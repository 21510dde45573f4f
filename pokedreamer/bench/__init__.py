"""Benchmarks: how fast each part runs, and what one costs another."""
