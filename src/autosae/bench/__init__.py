"""Trusted side of the benchmark: profiles, model builds and the scorer.

The variant's process must never import this package (the harness's import guard
blocks it): it is where the ground truth lives.
"""
