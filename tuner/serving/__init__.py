"""Serving under load: continuous-batching engines behind OpenAI-compatible servers (design §15)."""
