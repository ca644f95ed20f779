"""Measuring one config: the Measurer interface, its backends, the worker and launcher, cache, fingerprint."""
