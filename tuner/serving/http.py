"""Plain OpenAI-compatible completions against our own 127.0.0.1 server (warm-up and accuracy, not load)."""

from __future__ import annotations

import json
import urllib.request


def complete(base_url: str, model: str, prompt: str, max_tokens: int, timeout_s: float) -> str:
    """One greedy, non-streamed ``/v1/completions`` call; the generated text."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0}).encode()
    request = urllib.request.Request(f"{base_url}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - our own server
        return json.loads(response.read())["choices"][0]["text"]
