"""Metrics: one confusion-count kernel, and every curve, threshold rule and metric derived from it."""
