"""infertune: find the best inference configuration by measuring real runs (import stays cheap: no torch here)."""

__version__ = "0.1.0"
