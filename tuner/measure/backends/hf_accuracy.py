"""Accuracy against the reference config: greedy continuations, scored teacher-forced (design §5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from tuner.measure.backends.hf_timing import render_prompts


@dataclass
class Reference:
    """The reference's prompts and continuations (token ids) and its log-probabilities on them."""

    sequences: list[tuple[list[int], list[int]]]  # (prompt ids, continuation ids up to and including EOS)
    logprobs: list[torch.Tensor]  # per sequence: [continuation length, vocab], float32 on CPU


def _continuation(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: position + 1]
    return tokens


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    ids.add(tokenizer.eos_token_id)
    return {token for token in ids if token is not None}


def greedy_sequences(model: Any, tokenizer: Any, prompts: list[str], new_tokens: int, chat_template: bool,
                     device: str) -> list[tuple[list[int], list[int]]]:
    """The reference model's greedy continuations, one prompt at a time (no padding can change them)."""
    sequences = []
    eos_ids = _eos_ids(tokenizer, model)
    for text in render_prompts(tokenizer, prompts, chat_template):
        prompt = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(device)
        with torch.inference_mode():
            output = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                    max_new_tokens=new_tokens, do_sample=False, disable_compile=True,
                                    pad_token_id=tokenizer.pad_token_id)
        continuation = _continuation(output[0, prompt.shape[1]:].tolist(), eos_ids)
        sequences.append((prompt[0].tolist(), continuation))
    return sequences


def teacher_forced_logprobs(model: Any, sequences: list[tuple[list[int], list[int]]], pad_id: int, device: str,
                            batch_size: int = 8, forward: Callable[..., Any] | None = None) -> list[torch.Tensor]:
    """Log-probabilities the model gives at each continuation position, left-padded batches, true positions.

    ``forward`` replaces ``model(...)`` (e.g. the compiled call generate uses); the batch size is fixed, not
    the config's, so a config's accuracy does not depend on its batch size.
    """
    forward = forward or model
    results: list[torch.Tensor] = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        full = [prompt + continuation for prompt, continuation in chunk]
        width = max(len(tokens) for tokens in full)
        input_ids = torch.full((len(full), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(full), width), dtype=torch.long)
        for row, tokens in enumerate(full):
            input_ids[row, width - len(tokens):] = torch.tensor(tokens)
            mask[row, width - len(tokens):] = 1
        # Left padding shifts tokens right; positions must count real tokens only or RoPE sees wrong offsets.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = forward(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                           position_ids=positions.to(device)).logits.float().cpu()
        for row, (_prompt, continuation) in enumerate(chunk):
            count = len(continuation)
            # logits at t predict token t+1: the continuation's tokens sit in the last `count` columns
            predicting = logits[row, width - count - 1: width - 1]
            results.append(torch.log_softmax(predicting, dim=-1))
    return results


def agreement(reference: Reference, candidate: list[torch.Tensor]) -> dict[str, float]:
    """``top1_agree`` (candidate argmax equals the reference token) and mean ``kl`` = KL(reference ‖ candidate)."""
    matches = positions = 0
    kl_total = 0.0
    for (_prompt, continuation), ref_lp, cand_lp in zip(reference.sequences, reference.logprobs, candidate,
                                                        strict=True):
        targets = torch.tensor(continuation)
        matches += int((cand_lp.argmax(-1) == targets).sum())
        positions += len(continuation)
        kl_total += float((ref_lp.exp() * (ref_lp - cand_lp)).sum(-1).clamp(min=0).sum())
    return {"top1_agree": matches / positions, "kl": kl_total / positions}
