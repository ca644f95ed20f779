"""Measuring one config: worker subprocess, launcher, backends, cache, fingerprint, status."""
