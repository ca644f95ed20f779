"""The reference's outputs and each variant's accuracy figures on disk: served to a fresh worker, missed on change."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from tuner.measure.backends import accuracy_store, hf_task_accuracy
from tuner.measure.backends import hf as hf_module
from tuner.measure.backends.hf import HFBackend
from tuner.measure.backends.hf_accuracy import Reference
from tuner.measure.backends.hf_models import load_tokenizer
from tuner.measure.early_stop import StopRule
from tuner.measure.worker_caches import CACHE_DIR
from tuner.objective import Bound

FIGURES = ("top1_agree", "kl", "task_accuracy")
FLOAT32, BFLOAT16 = {"dtype": "float32", "batch_size": 1}, {"dtype": "bfloat16", "batch_size": 1}
SHARDED = {"shard_count": 2, "batch_size": 1}
# A bound no config meets, checked after both accuracy steps: the measurement stops before timing (seconds saved).
ACCURACY_ONLY = StopRule((Bound("task_accuracy", minimum=2.0),), maximize_throughput=False)
NO_TIMING = StopRule((Bound("top1_agree", minimum=2.0),), maximize_throughput=False)  # the same, without a labeled set


@pytest.fixture
def task(tiny_task) -> dict:
    """The tiny task with a small labeled set and short timing."""
    spec = tiny_task.worker_spec()
    spec["workload"] = {**spec["workload"], "max_repeats": 3, "max_measure_s": 3.0}
    items = [{"prompt": "Say yes.", "answer": "yes"}, {"prompt": "Two plus two?", "answer": "four"}]
    spec["accuracy"] = {**spec["accuracy"], "labeled": {"items": items, "new_tokens": 4}}
    return spec


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The worker's cache folder, as the evaluator passes it; returns the store's own folder."""
    monkeypatch.setenv(CACHE_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache" / accuracy_store.FOLDER


def _measure(task: dict, config: dict, stop: StopRule | None = ACCURACY_ONLY) -> tuple[dict, dict]:
    """Measure ``config`` in a fresh backend (a fresh worker's view: nothing in memory)."""
    backend = HFBackend()
    try:
        return backend.measure(task, config, stop=stop)
    finally:
        backend.close()


def _forbid(monkeypatch, *names: str) -> None:
    """Make the named scoring steps fail: a measurement that still succeeds read their results from disk."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("computed, not served from disk")

    for name in names:
        module = hf_task_accuracy if name == "labeled_accuracy" else hf_module
        monkeypatch.setattr(module, name, refuse)


def test_a_fresh_backend_serves_reference_and_figures_from_disk(task, store, monkeypatch):
    first, first_info = _measure(task, FLOAT32, stop=None)  # a whole measurement: timing adds nothing stored
    assert first_info["reference_cached"] == "computed" and first_info["reference_s"] > 0
    assert first_info["accuracy_cached"] is False and first_info["accuracy_s"] >= first_info["reference_s"]
    _forbid(monkeypatch, "greedy_sequences", "teacher_forced_logprobs", "labeled_accuracy")
    again, info = _measure(task, FLOAT32)
    assert info["reference_cached"] == "disk" and info["reference_s"] == 0.0 and info["accuracy_cached"] is True
    assert {name: again[name] for name in FIGURES} == {name: first[name] for name in FIGURES}
    assert info["reference_metrics"] == first_info["reference_metrics"]


def test_without_a_labeled_set_the_reference_is_served_as_the_figures_are(task, store, monkeypatch):
    task["accuracy"] = {**task["accuracy"], "labeled": None}
    _measure(task, FLOAT32)
    _forbid(monkeypatch, "greedy_sequences", "teacher_forced_logprobs")
    backend = HFBackend()  # a fresh worker: the figures, scored against the reference, come from disk
    try:
        _, from_disk = backend.measure(task, FLOAT32, stop=NO_TIMING)
        _, from_memory = backend.measure(task, FLOAT32, stop=NO_TIMING)
    finally:
        backend.close()
    assert (from_disk["reference_cached"], from_disk["accuracy_cached"]) == ("disk", True)
    assert (from_memory["reference_cached"], from_memory["reference_s"]) == ("memory", 0.0)


def test_a_new_variant_is_scored_against_the_stored_reference(task, store, monkeypatch):
    _measure(task, FLOAT32)
    with monkeypatch.context() as patch:
        patch.delenv(CACHE_DIR)
        computed, _ = _measure(task, BFLOAT16)  # memory only: the reference generated afresh
    _forbid(monkeypatch, "greedy_sequences")
    served, info = _measure(task, BFLOAT16)
    assert info["reference_cached"] == "disk" and info["reference_s"] == 0.0 and info["accuracy_cached"] is False
    assert {name: served[name] for name in FIGURES} == {name: computed[name] for name in FIGURES}


@pytest.mark.parametrize("change", ["eval_prompt", "seed", "labeled_item"])
def test_a_changed_task_misses(task, store, change):
    _measure(task, FLOAT32)
    if change == "eval_prompt":
        prompts = task["accuracy"]["eval_prompts"]
        task["accuracy"] = {**task["accuracy"], "eval_prompts": ["Another question?", *prompts[1:]]}
    elif change == "seed":
        task["seed"] += 1
    else:
        labeled = task["accuracy"]["labeled"]
        task["accuracy"] = {**task["accuracy"], "labeled": {**labeled, "items": labeled["items"][:1]}}
    _, info = _measure(task, FLOAT32)
    assert info["reference_cached"] == "computed" and info["accuracy_cached"] is False
    assert len(list(store.glob("*.safetensors"))) == 2  # the first task's entry stays beside the new one


class FakeRanks:
    """Stands in for a tensor-parallel group: records each request, answers as rank 0 would (uniform guesses)."""

    def __init__(self, vocab: int):
        self.vocab = vocab
        self.requests: list[dict] = []

    def measure(self, request: dict) -> dict:
        self.requests.append(request)
        sequences = request["sequences"]
        logprobs = None if sequences is None else [torch.full((len(continuation), self.vocab), -math.log(self.vocab))
                                                   for _prompt, continuation in sequences]
        return {"metrics": {}, "info": {}, "logprobs": logprobs,
                "task_accuracy": 0.5 if request["labeled"] else None}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="2 tensor-parallel ranks need 2 CPU cores")
def test_a_sharded_config_reads_its_figures_from_disk(task, store, monkeypatch):
    ranks = FakeRanks(len(load_tokenizer(task["model"])))
    monkeypatch.setattr(HFBackend, "_group", lambda _self, _world, _device: ranks)
    first, first_info = _measure(task, SHARDED)
    assert ranks.requests[-1]["sequences"] and ranks.requests[-1]["labeled"]
    assert first_info["reference_cached"] == "computed" and first_info["accuracy_cached"] is False
    _forbid(monkeypatch, "greedy_sequences", "teacher_forced_logprobs", "labeled_accuracy")
    again, info = _measure(task, SHARDED)
    assert ranks.requests[-1]["sequences"] is None and ranks.requests[-1]["labeled"] is None  # nothing to score
    assert info["reference_cached"] == "disk" and info["reference_s"] == 0.0 and info["accuracy_cached"] is True
    assert {name: again[name] for name in FIGURES} == {name: first[name] for name in FIGURES}
    assert first["task_accuracy"] == 0.5 and first["top1_agree"] < 0.5  # the ranks' figures, not the reference's


BASE = {"id": "t", "model": {"tiny": {}}, "seed": 0, "workload": {"chat_template": False},
        "accuracy": {"eval_prompts": ["a"], "new_tokens": 8, "reference": {"dtype": "float32"}, "labeled": None}}
CHANGES = {"id": {"id": "u"}, "model": {"model": {"tiny": {"hidden_size": 32}}}, "seed": {"seed": 1},
           "chat_template": {"workload": {"chat_template": True}},
           "eval_prompts": {"accuracy": {**BASE["accuracy"], "eval_prompts": ["b"]}},
           "new_tokens": {"accuracy": {**BASE["accuracy"], "new_tokens": 9}},
           "reference": {"accuracy": {**BASE["accuracy"], "reference": {"dtype": "bfloat16"}}},
           "labeled": {"accuracy": {**BASE["accuracy"], "labeled": {"items": [], "new_tokens": 1}}}}


@pytest.mark.parametrize("part", sorted(CHANGES))
def test_every_part_of_the_task_is_in_the_key(part):
    reference = {"dtype": "float32"}
    assert accuracy_store.task_key(BASE, "cpu", reference) == accuracy_store.task_key(dict(BASE), "cpu", reference)
    assert accuracy_store.task_key({**BASE, **CHANGES[part]}, "cpu", reference) != \
        accuracy_store.task_key(BASE, "cpu", reference)


def test_device_reference_config_and_software_are_in_the_key(monkeypatch):
    key = accuracy_store.task_key(BASE, "cpu", {"dtype": "float32"})
    assert accuracy_store.task_key(BASE, "cpu", {"dtype": "float32", "quantization": "int8"}) != key
    monkeypatch.setattr(accuracy_store, "fingerprint", lambda device: {"device": device, "torch": "0.0"})
    assert accuracy_store.task_key(BASE, "cpu", {"dtype": "float32"}) != key
    assert accuracy_store.task_key(BASE, "cuda", {"dtype": "float32"}) != accuracy_store.task_key(
        BASE, "cpu", {"dtype": "float32"})
    monkeypatch.setattr(accuracy_store, "STORE_VERSION", accuracy_store.STORE_VERSION + 1)
    assert accuracy_store.task_key(BASE, "cpu", {"dtype": "float32"}) != key


def _damage(store, kind: str) -> None:
    for path in store.iterdir():
        if kind == "truncated" and path.suffix == ".safetensors":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif kind == "bad-json" and path.suffix == ".json":
            path.write_text('{"top1_agree": 1.0,')
        elif kind == "not-figures" and path.suffix == ".json":
            path.write_text('{"top1_agree": 1e999, "kl": [1]}')


@pytest.mark.parametrize("kind", ["truncated", "bad-json", "not-figures"])
def test_a_damaged_entry_is_computed_again_and_rewritten(task, store, monkeypatch, kind):
    first, _ = _measure(task, FLOAT32)
    _damage(store, kind)
    config = BFLOAT16 if kind == "truncated" else FLOAT32  # a new variant: it needs the reference's tensors
    again, info = _measure(task, config)
    assert info["reference_cached"] == "computed"
    if config is FLOAT32:
        assert info["accuracy_cached"] is False
        assert {name: again[name] for name in FIGURES} == {name: first[name] for name in FIGURES}
    count = len(task["accuracy"]["eval_prompts"])
    assert all(accuracy_store.load_reference(path.stem, count) for path in store.glob("*.safetensors"))
    _forbid(monkeypatch, "greedy_sequences", "teacher_forced_logprobs", "labeled_accuracy")
    served, info = _measure(task, config)  # rewritten: served whole from disk
    assert info["reference_cached"] == "disk" and info["accuracy_cached"] is True
    assert {name: served[name] for name in FIGURES} == {name: again[name] for name in FIGURES}


def _stored_reference(count: int = 2, vocab: int = 5) -> Reference:
    sequences = [([1, 2], [3, 4, 5]) for _ in range(count)]
    return Reference(sequences, [torch.log_softmax(torch.randn(3, vocab), -1) for _ in range(count)])


@pytest.mark.parametrize("damage", ["fewer tensors", "wrong length", "other vocab", "float64", "bad sequences"])
def test_a_reference_file_that_does_not_fit_is_a_miss(store, damage):
    reference = _stored_reference()
    accuracy_store.save_reference("k", reference)
    loaded = accuracy_store.load_reference("k", 2)
    assert loaded is not None and loaded.sequences == reference.sequences
    assert all(torch.equal(a, b) for a, b in zip(loaded.logprobs, reference.logprobs, strict=True))  # exact
    # one sequence per eval prompt: a file with more or fewer is another task's
    assert accuracy_store.load_reference("k", 3) is None and accuracy_store.load_reference("k", 1) is None
    if damage == "fewer tensors":
        reference.logprobs.pop()
    elif damage == "wrong length":
        reference.logprobs[1] = reference.logprobs[1][:2]
    elif damage == "other vocab":
        reference.logprobs[1] = torch.zeros(3, 6)
    elif damage == "float64":
        reference.logprobs[1] = reference.logprobs[1].double()
    else:
        reference.sequences[1] = ([1, 2], [3, "4", 5])  # type: ignore[list-item]
    tensors = {str(index): tensor.contiguous() for index, tensor in enumerate(reference.logprobs)}
    from safetensors.torch import save_file

    save_file(tensors, store / "k.safetensors", metadata={"sequences": json.dumps(reference.sequences)})
    assert accuracy_store.load_reference("k", 2) is None


def test_without_a_cache_folder_nothing_is_written(task, tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_DIR, raising=False)
    monkeypatch.chdir(tmp_path)

    def refuse(*_args, **_kwargs):
        raise AssertionError("wrote to disk without a cache folder")

    monkeypatch.setattr(accuracy_store, "_write_atomically", refuse)
    metrics, info = _measure(task, FLOAT32)
    assert info["reference_cached"] == "computed" and metrics["kl"] is not None
    assert list(tmp_path.iterdir()) == []


def test_the_store_holds_no_pickle(task, store):
    _measure(task, FLOAT32)
    _measure(task, BFLOAT16)
    files = sorted(store.iterdir())
    # one reference (tensors + token ids), its labeled figure (eager attention: a variant of its own), and two
    # variants x (teacher-forced figures, labeled figure)
    assert sorted(path.suffix for path in files) == [".json"] * 5 + [".safetensors"]
    for path in files:
        assert path.read_bytes()[:1] != b"\x80"  # a pickle's first byte (protocol 2 and later)
        if path.suffix == ".json":
            assert set(json.loads(path.read_text())) in ({"top1_agree", "kl"}, {"task_accuracy"})


def test_an_unwritable_store_costs_only_the_recompute(task, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_DIR, str(blocked))
    _, info = _measure(task, FLOAT32)
    assert info["reference_cached"] == "computed" and os.listdir(tmp_path) == ["file"]
