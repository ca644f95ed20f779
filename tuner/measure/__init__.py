"""Measuring one config: the Measurer interface (measurer.py) and its backends (HF worker via launcher, replay),
cache, fingerprint, feasibility, status."""
