"""Evaluation: runs of a target over a dataset version, scorers, comparisons with significance, CI gates."""
