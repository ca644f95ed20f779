"""Utilities with no knowledge of tuning: user errors, names, text files, redaction, formatting."""
