"""Serving under load: continuous-batching engines behind OpenAI-compatible servers (DESIGN §15)."""
