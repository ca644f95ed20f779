"""Backends that run a config: ``hf`` (transformers, real inference). torch is imported only below here."""
