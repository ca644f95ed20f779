"""The evaluator every agent shares, the tuning session that counts its budget, and resume."""
