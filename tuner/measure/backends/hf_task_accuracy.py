"""Task accuracy on a small labeled set: greedy answers, parsed to one label, exact-matched (design §5)."""

from __future__ import annotations

from typing import Any

import torch

from tuner.measure.backends.hf_timing import render_prompts
from tuner.measure.labels import labeled_share


def greedy_answers(model: Any, tokenizer: Any, prompts: list[str], new_tokens: int, chat_template: bool,
                   device: str, batch_size: int = 16) -> list[str]:
    """The model's greedy answer to each prompt, in left-padded batches (generate derives positions from the mask).

    Batched because a labeled set of ~50 items is scored once per weights variant: one prompt at a time would
    make task accuracy cost more than the timing itself.
    """
    texts = render_prompts(tokenizer, prompts, chat_template)
    answers = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        with torch.inference_mode():
            output = model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, disable_compile=True,
                                    pad_token_id=tokenizer.pad_token_id)
        width = batch["input_ids"].shape[1]
        answers.extend(tokenizer.batch_decode(output[:, width:], skip_special_tokens=True))
    return answers


def labeled_accuracy(model: Any, tokenizer: Any, items: list[dict[str, Any]], new_tokens: int, chat_template: bool,
                     device: str) -> float:
    """Share of items whose parsed greedy answer equals the item's label."""
    answers = greedy_answers(model, tokenizer, [item["prompt"] for item in items], new_tokens, chat_template, device)
    return labeled_share(answers, items)
