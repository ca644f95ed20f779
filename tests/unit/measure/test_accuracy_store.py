"""The reference's outputs and each variant's accuracy figures on disk: served to a fresh worker, missed on change."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load, save_file

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


class RanksWithoutTaskAccuracy(FakeRanks):
    """Ranks whose answer carries no task accuracy, though a labeled set was asked for."""

    def measure(self, request: dict) -> dict:
        return {**super().measure(request), "task_accuracy": None}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="2 tensor-parallel ranks need 2 CPU cores")
def test_a_rank_answer_without_task_accuracy_gives_none(task, monkeypatch):
    monkeypatch.delenv(CACHE_DIR, raising=False)
    ranks = RanksWithoutTaskAccuracy(len(load_tokenizer(task["model"])))
    monkeypatch.setattr(HFBackend, "_group", lambda _self, _world, _device: ranks)
    metrics, _ = _measure(task, SHARDED)
    assert ranks.requests[-1]["labeled"] and metrics["task_accuracy"] is None


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
    assert accuracy_store.task_key({**BASE, **CHANGES[part]}, "cpu", reference) != \
        accuracy_store.task_key(BASE, "cpu", reference)


def test_timing_settings_are_not_in_the_key():
    # a config's accuracy does not depend on how it is timed: a new timing budget keeps the stored reference
    timing = {**BASE, "workload": {**BASE["workload"], "max_repeats": 9, "max_measure_s": 1.0}}
    assert accuracy_store.task_key(timing, "cpu", {}) == accuracy_store.task_key(BASE, "cpu", {})


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


def _stored_reference(count: int = 2, vocab: int = 8) -> Reference:
    sequences = [([1, 2], [3, 4, 5]) for _ in range(count)]
    return Reference(sequences, [torch.log_softmax(torch.randn(3, vocab), -1) for _ in range(count)])


@pytest.mark.parametrize("damage", ["fewer tensors", "wrong length", "other vocab", "float64", "bad sequences",
                                    "token id out of range", "negative token id", "infinite log-prob"])
def test_a_reference_file_that_does_not_fit_is_a_miss(store, damage):
    reference = _stored_reference()
    accuracy_store.save_reference("k", reference)
    loaded = accuracy_store.load_reference("k", 2)
    assert loaded is not None and loaded.sequences == reference.sequences
    assert all(torch.equal(a, b) for a, b in zip(loaded.logprobs, reference.logprobs, strict=True))  # exact
    # one sequence per eval prompt: a file with more or fewer is another task's
    assert accuracy_store.load_reference("k", 3) is None and accuracy_store.load_reference("k", 1) is None
    # the model's output width, when the caller knows it: another model's log-probabilities do not fit
    assert accuracy_store.load_reference("k", 2, vocab=8) is not None
    assert accuracy_store.load_reference("k", 2, vocab=9) is None
    if damage == "fewer tensors":
        reference.logprobs.pop()
    elif damage == "wrong length":
        reference.logprobs[1] = reference.logprobs[1][:2]
    elif damage == "other vocab":
        reference.logprobs[1] = torch.zeros(3, 9)
    elif damage == "float64":
        reference.logprobs[1] = reference.logprobs[1].double()
    elif damage == "token id out of range":
        reference.sequences[1] = ([1, 2], [3, 8, 5])  # 8 log-probabilities a position: ids 0 to 7
    elif damage == "negative token id":
        reference.sequences[1] = ([-1, 2], [3, 4, 5])
    elif damage == "infinite log-prob":
        reference.logprobs[1][0, 0] = -math.inf
    else:
        reference.sequences[1] = ([1, 2], [3, "4", 5])  # type: ignore[list-item]
    tensors = {str(index): tensor.contiguous() for index, tensor in enumerate(reference.logprobs)}
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
    # only formats that run no code when read: one reference (tensors + token ids), its labeled figure (eager
    # attention: a variant of its own), and two variants x (teacher-forced figures, labeled figure)
    assert sorted(path.suffix for path in files) == [".json"] * 5 + [".safetensors"]
    for path in files:
        if path.suffix == ".json":
            assert set(json.loads(path.read_bytes())) in ({"top1_agree", "kl"}, {"task_accuracy"})
        else:
            assert set(load(path.read_bytes())) == {str(i) for i in range(len(task["accuracy"]["eval_prompts"]))}


def test_an_unwritable_store_costs_only_the_recompute(task, tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_DIR, str(blocked))
    _, info = _measure(task, FLOAT32)
    assert info["reference_cached"] == "computed" and os.listdir(tmp_path) == ["file"]


SAVED_FIGURES = {"top1_agree": 0.75, "kl": 0.125}


def _save_entry(key: str, suffix: str) -> None:
    """Store a valid entry of the kind ``suffix`` names under ``key``."""
    if suffix == ".json":
        accuracy_store.save_figures(key, SAVED_FIGURES)
    else:
        accuracy_store.save_reference(key, _stored_reference())


def _load_entry(key: str, suffix: str) -> object:
    """The entry of the kind ``suffix`` names under ``key``, as the store serves it (None: a miss)."""
    if suffix == ".json":
        return accuracy_store.load_figures(key, SAVED_FIGURES)
    return accuracy_store.load_reference(key, 2)


def _tree(folder) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_a_linked_entry_is_a_miss_and_nothing_is_written_through_it(store, tmp_path, monkeypatch, suffix):
    outside = tmp_path / "elsewhere"
    with monkeypatch.context() as patch:
        patch.setenv(CACHE_DIR, str(outside))
        _save_entry("a", suffix)
        assert _load_entry("a", suffix) is not None  # a valid entry: served where it lies
    before = _tree(outside)
    store.mkdir(parents=True)
    (store / f"k{suffix}").symlink_to(outside / accuracy_store.FOLDER / f"a{suffix}")
    assert _load_entry("k", suffix) is None
    _save_entry("k", suffix)  # the link is replaced, not written through
    assert _tree(outside) == before and not (store / f"k{suffix}").is_symlink()
    assert _load_entry("k", suffix) is not None


@pytest.mark.parametrize("suffix", [".json", ".safetensors"])
def test_a_fifo_entry_is_a_miss_at_once(store, suffix):
    store.mkdir(parents=True)
    fifo = store / f"k{suffix}"
    os.mkfifo(fifo)
    served: list[object] = []
    reader = threading.Thread(target=lambda: served.append(_load_entry("k", suffix)), daemon=True)
    start = time.perf_counter()
    reader.start()
    reader.join(timeout=1.0)
    waited = time.perf_counter() - start
    if reader.is_alive():  # blocked on the FIFO: a writer that leaves at once ends its read
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=1.0)
    assert served == [None] and waited < 0.5
    _save_entry("k", suffix)  # replaced by a real entry
    assert _load_entry("k", suffix) is not None


@pytest.mark.parametrize("linked", ["store folder", "cache folder"])
def test_a_linked_folder_is_neither_read_nor_written(tmp_path, monkeypatch, linked):
    outside = tmp_path / "elsewhere"
    monkeypatch.setenv(CACHE_DIR, str(outside))
    for suffix in (".json", ".safetensors"):
        _save_entry("k", suffix)
    before = _tree(outside)
    cache = tmp_path / "cache"
    if linked == "store folder":
        cache.mkdir()
        (cache / accuracy_store.FOLDER).symlink_to(outside / accuracy_store.FOLDER, target_is_directory=True)
    else:
        cache.symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv(CACHE_DIR, str(cache))
    for suffix in (".json", ".safetensors"):
        assert _load_entry("k", suffix) is None
        for key in ("k", "other"):
            _save_entry(key, suffix)  # memory only: no error
    assert _tree(outside) == before


@pytest.mark.parametrize("figures", [{"top1_agree": 1.5, "kl": 0.1}, {"top1_agree": 0.5, "kl": -5},
                                     {"top1_agree": -0.1, "kl": 0.1}, {"top1_agree": 0.5, "kl": "Infinity"},
                                     {"task_accuracy": 1.01}, "oversized"],
                         ids=["top1 1.5", "kl -5", "top1 -0.1", "kl infinity", "task_accuracy 1.01", "oversized"])
def test_an_implausible_figure_is_a_miss(store, figures):
    store.mkdir(parents=True)
    if figures == "oversized":  # valid JSON, past the cap
        figures = {"top1_agree": 0.5, "kl": 0.1}
        (store / "k.json").write_text(json.dumps(figures) + " " * 65536)
    else:
        (store / "k.json").write_text(json.dumps(figures).replace('"Infinity"', "Infinity"))
    assert accuracy_store.load_figures("k", set(figures)) is None
    accuracy_store.save_figures("k", {name: 0.5 for name in figures})
    assert accuracy_store.load_figures("k", set(figures)) == {name: 0.5 for name in figures}


def _make_implausible(store, damage: str) -> None:
    """Give each entry ``damage`` touches a value of the right type but out of its range."""
    for path in store.iterdir():
        if path.suffix == ".safetensors" and damage in ("token id out of range", "NaN log-prob"):
            with safe_open(path, framework="pt") as stored:  # the test's own file: safe to open by path
                sequences = json.loads(stored.metadata()["sequences"])
            tensors = {name: tensor.clone() for name, tensor in load(path.read_bytes()).items()}
            if damage == "NaN log-prob":
                tensors["0"][0, 0] = math.nan
            else:
                sequences[0][1][0] = tensors["0"].shape[-1]
            save_file(tensors, path, metadata={"sequences": json.dumps(sequences)})
        elif path.suffix == ".json" and damage in ("kl -5", "top1 1.5"):
            figures = json.loads(path.read_text())
            if "kl" in figures:
                figures.update({"kl": -5} if damage == "kl -5" else {"top1_agree": 1.5})
            path.write_text(json.dumps(figures))


@pytest.mark.parametrize("damage", ["token id out of range", "NaN log-prob", "kl -5", "top1 1.5"])
def test_an_implausible_entry_is_computed_again_and_overwritten(task, store, monkeypatch, damage):
    first, _ = _measure(task, FLOAT32)
    _make_implausible(store, damage)
    in_reference = damage in ("token id out of range", "NaN log-prob")
    config = BFLOAT16 if in_reference else FLOAT32  # a new variant: it needs the reference's tensors
    again, info = _measure(task, config)
    if in_reference:
        assert info["reference_cached"] == "computed"
    else:
        assert info["accuracy_cached"] is False
        assert {name: again[name] for name in FIGURES} == {name: first[name] for name in FIGURES}
    count = len(task["accuracy"]["eval_prompts"])
    assert all(accuracy_store.load_reference(path.stem, count) for path in store.glob("*.safetensors"))
    assert all(accuracy_store.load_figures(path.stem, json.loads(path.read_bytes())) for path in store.glob("*.json"))
    _forbid(monkeypatch, "greedy_sequences", "teacher_forced_logprobs", "labeled_accuracy")
    served, info = _measure(task, config)  # overwritten: served whole from disk
    assert info["reference_cached"] == "disk" and info["accuracy_cached"] is True
    assert {name: served[name] for name in FIGURES} == {name: again[name] for name in FIGURES}
