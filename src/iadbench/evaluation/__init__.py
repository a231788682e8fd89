"""Thresholds, evaluation, tables and report: everything after the maps gate."""
