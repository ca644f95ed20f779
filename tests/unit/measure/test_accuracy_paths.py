"""Accuracy and prompts on the paths that serve: padded batches, compiled forward, chat prompts, labeled sets."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers import ROOT
from tuner.measure.backends.hf import HFBackend
from tuner.measure.backends.hf_accuracy import Reference, agreement, greedy_sequences, teacher_forced_logprobs
from tuner.measure.backends.hf_models import load_model, load_tokenizer
from tuner.measure.backends.hf_timing import build_batches, generation_config
from tuner.task import load_task

TINY = {"tiny": {}}
PROMPTS = ["Write a polite reply to a customer whose order arrived late.", "Classify: shares fell.",
           "Summarize: the council approved thirty kilometres of bike lanes.", "Why?"]
# A minimal chat template, so the byte tokenizer (one token per character) has one.
TEMPLATE = ("{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


def _gpt2(vocab: int) -> torch.nn.Module:
    """A tiny GPT-2: learned absolute positions, so a wrong position id changes every logit."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_a_sequence_scores_the_same_alone_and_left_padded(tokenizer, architecture):
    vocab = len(tokenizer)
    model = _gpt2(vocab) if architecture == "gpt2" else load_model(TINY, "float32", "none", "cpu", 0, vocab)[0]
    short = ([5, 6, 7, 8, 9], [10, 11, 12, 13])
    longer = (list(range(20, 60)), [61, 62, 63])
    alone = teacher_forced_logprobs(model, [short], tokenizer.pad_token_id, "cpu")[0]
    # next to a 43-token sequence, the short one is left-padded by 34 tokens
    padded = teacher_forced_logprobs(model, [short, longer], tokenizer.pad_token_id, "cpu")[0]
    assert alone.shape == padded.shape == (4, vocab)
    assert torch.allclose(alone, padded, atol=1e-5)


def test_compiled_and_plain_forward_agree(tokenizer):
    # Accuracy is scored with the plain forward (info["accuracy_path"]); this shows the compiled call
    # generate uses for compile: true gives the same distributions here, within KL 1e-4 (bfloat16: the
    # dtype where a fused kernel's different rounding shows most; float32 is closer still).
    model, _ = load_model(TINY, "bfloat16", "none", "cpu", 0, len(tokenizer))
    sequences = greedy_sequences(model, tokenizer, PROMPTS, 8, False, "cpu")
    plain = teacher_forced_logprobs(model, sequences, tokenizer.pad_token_id, "cpu")
    compile_config = generation_config({"compile": True, "cache_implementation": "static"}, 8, tokenizer,
                                       "cpu").compile_config
    compiled_call = model.get_compiled_call(compile_config)
    compiled = teacher_forced_logprobs(model, sequences, tokenizer.pad_token_id, "cpu", forward=compiled_call)
    assert agreement(Reference(sequences, plain), compiled)["kl"] < 1e-4
    assert compiled_call is not model.__call__  # a compiled callable really scored


def _rows(tokenizer, batches) -> list[str]:
    ids, mask = batches[0]["input_ids"], batches[0]["attention_mask"]
    return [tokenizer.decode(row[keep.bool()]) for row, keep in zip(ids, mask, strict=True)]


def test_long_chat_prompts_lose_user_content_not_the_template(tokenizer):
    tokenizer.chat_template = TEMPLATE
    workload = {"prompts": ["x" * 100, "short"], "num_requests": 2, "max_prompt_tokens": 40, "chat_template": True}
    batches = build_batches(tokenizer, workload, 2, "cpu")
    assert batches[0]["input_ids"].shape == (2, 40)
    # 28 template characters leave 12 of the user's 100: the assistant header still ends the prompt
    assert _rows(tokenizer, batches) == ["<|user|>" + "x" * 12 + "<|end|><|assistant|>",
                                         "<|user|>short<|end|><|assistant|>"]


def test_raw_prompts_keep_their_start(tokenizer):
    workload = {"prompts": ["abcdefghij"], "num_requests": 1, "max_prompt_tokens": 4, "chat_template": False}
    assert _rows(tokenizer, build_batches(tokenizer, workload, 1, "cpu")) == ["abcd"]


def test_smollm2_chat_prompt_keeps_the_assistant_header():
    smol = load_tokenizer(load_task(ROOT / "envs" / "smollm2-cpu.yaml").model)  # converts the GGUF on first use
    workload = {"prompts": ["Summarize this report. " * 40], "num_requests": 1, "max_prompt_tokens": 96,
                "chat_template": True}
    batch = build_batches(smol, workload, 1, "cpu")[0]
    assert batch["input_ids"].shape[1] <= 96
    text = smol.decode(batch["input_ids"][0])
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n") and "Summarize this report." in text


def _labeled_task(tiny_task, tokenizer) -> tuple[dict, list[dict]]:
    """Half the items are labeled with the float32 model's own greedy answer, half with an impossible one."""
    from tuner.measure.backends.hf_task_accuracy import greedy_answers

    model, _ = load_model(TINY, "float32", "none", "cpu", tiny_task.seed, len(tokenizer))
    prompts = ["Is this good?", "Name a colour.", "Two plus two?", "Say yes."]
    answers = greedy_answers(model, tokenizer, prompts, 4, False, "cpu")
    items = [{"prompt": prompt, "answer": answer if index % 2 == 0 else "zzzz never"}
             for index, (prompt, answer) in enumerate(zip(prompts, answers, strict=True))]
    task = tiny_task.worker_spec()
    task["model"] = {**task["model"], "tiny": {}}
    task["workload"] = {**task["workload"], "max_repeats": 3, "max_measure_s": 3.0}
    task["accuracy"] = {**task["accuracy"], "labeled": {"items": items, "new_tokens": 4}}
    return task, answers


def test_task_accuracy_is_scored_on_the_labeled_set(tiny_task):
    tokenizer = load_tokenizer(TINY)
    task, answers = _labeled_task(tiny_task, tokenizer)
    assert all(answer != "zzzz never" for answer in answers)
    backend = HFBackend()
    try:
        metrics, info = backend.measure(task, {"dtype": "float32", "batch_size": 2})
        assert metrics["task_accuracy"] == 0.5 and info["reference_metrics"] == {"task_accuracy": 0.5}
        task["accuracy"] = {**task["accuracy"], "labeled": None}
        metrics, info = backend.measure(task, {"dtype": "float32", "batch_size": 2})
        assert metrics["task_accuracy"] is None and info["reference_metrics"] == {"task_accuracy": None}
    finally:
        backend.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="2 tensor-parallel ranks need 2 CPU cores")
def test_sharded_task_accuracy_runs_on_every_rank(tiny_task):
    tokenizer = load_tokenizer(TINY)
    task, _ = _labeled_task(tiny_task, tokenizer)
    backend = HFBackend()
    try:
        metrics, info = backend.measure(task, {"shard_count": 2, "batch_size": 2})
    finally:
        backend.close()
    # the split model answers as the whole one (KL < 1e-4 elsewhere): the same half of the items
    assert metrics["task_accuracy"] == 0.5 and info["reference_metrics"] == {"task_accuracy": 0.5}
