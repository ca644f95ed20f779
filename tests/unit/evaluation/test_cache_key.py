"""The cache key holds everything that can change a number: change any one ingredient and the cache misses.

Each baseline entry is a real measurement stored by a real Evaluator; every probe is a new Evaluator built
with one ingredient changed (the task, the environment or an installed package), asked through ``lookup``,
the same path ``evaluate`` takes. The fingerprint is read from its real inputs (core affinity, environment
variables, package metadata on sys.path, nvidia-smi on PATH); only the CPU's model name is patched.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tuner.evaluation import evaluator as evaluator_module
from tuner.evaluation.evaluator import Evaluator
from tuner.measure import fingerprint as fingerprint_module
from tuner.task import TaskSpec

INFEASIBLE_HERE = {"shard_count": 8}  # more ranks than the tiny model's 2 KV heads: infeasible on any machine
TWO_GPUS = "0, GPU-aaaa, NVIDIA H100 80GB HBM3, 550.54.15\n1, GPU-bbbb, NVIDIA H100 80GB HBM3, 550.54.15\n"
GPU_LIST = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\n  MIG 1g.10gb     Device  0: (UUID: MIG-cccc)\n"
            "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)\n")  # `nvidia-smi -L` with one MIG slice


def _served(task: TaskSpec, cache: Path, tmp_path: Path, config: dict | None = None, **options) -> bool:
    with Evaluator(task, tmp_path / "probe", cache_dir=cache, **options) as evaluator:
        return evaluator.lookup(task.space.complete(config or INFEASIBLE_HERE)) is not None


def _measure(task: TaskSpec, cache: Path, run: Path, **options) -> None:
    with Evaluator(task, run, cache_dir=cache, **options) as evaluator:
        record = evaluator.evaluate(INFEASIBLE_HERE)
        assert record.status == "infeasible" and record.cached is False and evaluator.measurements == 1


@pytest.fixture(scope="module")
def cpu_cache(tmp_path_factory: pytest.TempPathFactory, tiny_task: TaskSpec) -> Path:
    """A cache holding one real (infeasible) measurement of the tiny task on this machine."""
    cache = tmp_path_factory.mktemp("cache")
    _measure(tiny_task, cache, tmp_path_factory.mktemp("runs") / "base")
    return cache


def test_same_inputs_hit_and_run_nothing(tmp_path, tiny_task, cpu_cache):
    with Evaluator(tiny_task, tmp_path / "again", cache_dir=cpu_cache) as evaluator:
        record = evaluator.evaluate(INFEASIBLE_HERE)
        assert record.cached is True and evaluator.measurer.starts == 0 and evaluator.measurements == 0
    renamed = dataclasses.replace(tiny_task, model={**tiny_task.model, "name": "another label"})
    assert _served(renamed, cpu_cache, tmp_path)  # a display name does not change the weights


def _workload(**changes) -> Callable[[TaskSpec], TaskSpec]:
    return lambda task: dataclasses.replace(task, workload=dataclasses.replace(task.workload, **changes))


def _accuracy(**changes) -> Callable[[TaskSpec], TaskSpec]:
    return lambda task: dataclasses.replace(task, accuracy=dataclasses.replace(task.accuracy, **changes))


TASK_CHANGES: dict[str, Callable[[TaskSpec], TaskSpec]] = {
    "task id": lambda task: dataclasses.replace(task, id="tiny-cpu-copy"),
    "seed (the tiny model's weights)": lambda task: dataclasses.replace(task, seed=task.seed + 1),
    "model identity": lambda task: dataclasses.replace(
        task, model={**task.model, "tiny": {**task.model["tiny"], "intermediate_size": 96}}),
    "device": lambda task: dataclasses.replace(task, device="cuda"),
    "workload new_tokens": _workload(new_tokens=9),
    "workload prompts": _workload(prompts=("Say hello.",)),
    "workload num_requests": _workload(num_requests=8),
    "workload max_prompt_tokens": _workload(max_prompt_tokens=32),
    "workload chat_template": lambda task: _workload(chat_template=not task.workload.chat_template)(task),
    "workload repeats": _workload(max_repeats=6),
    "accuracy eval_prompts": _accuracy(eval_prompts=("Say hello.",)),
    "accuracy new_tokens": _accuracy(new_tokens=4),
    "accuracy reference": lambda task: _accuracy(reference={**task.accuracy.reference, "dtype": "bfloat16"})(task),
}


@pytest.mark.parametrize("change", list(TASK_CHANGES))
def test_each_task_ingredient_misses(tmp_path, tiny_task, cpu_cache, change):
    assert _served(tiny_task, cpu_cache, tmp_path)
    assert not _served(TASK_CHANGES[change](tiny_task), cpu_cache, tmp_path)


def test_another_config_misses(tmp_path, tiny_task, cpu_cache):
    assert not _served(tiny_task, cpu_cache, tmp_path, config={**INFEASIBLE_HERE, "batch_size": 2})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to take one away")
def test_fewer_usable_cores_miss(tmp_path, tiny_task, cpu_cache):
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # as `taskset -c 0` or a container's CPU limit would
    try:
        assert not _served(tiny_task, cpu_cache, tmp_path)
    finally:
        os.sched_setaffinity(0, cores)
    assert _served(tiny_task, cpu_cache, tmp_path)


def test_thread_limits_miss_in_this_process_or_the_worker(tmp_path, tiny_task, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    cache = tmp_path / "cache"  # its own baseline, with no limit set (the suite itself may run under one)
    _measure(tiny_task, cache, tmp_path / "base")
    assert _served(tiny_task, cache, tmp_path)
    assert not _served(tiny_task, cache, tmp_path, worker_env={"OMP_NUM_THREADS": "1"})
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    assert not _served(tiny_task, cache, tmp_path)


def _install_fake_version(site: Path, package: str, version: str) -> None:
    """Package metadata that importlib.metadata finds first on sys.path, as after `pip install package==version`."""
    info = site / f"{package}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")


@pytest.mark.parametrize("package", ["torch", "transformers", "torchao", "mslk"])
def test_another_library_version_misses(tmp_path, tiny_task, cpu_cache, monkeypatch, package):
    assert _served(tiny_task, cpu_cache, tmp_path)
    _install_fake_version(tmp_path / "site", package, "99.0.0")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert not _served(tiny_task, cpu_cache, tmp_path)


def test_another_measurement_version_misses(tmp_path, tiny_task, cpu_cache, monkeypatch):
    # results measured by older measuring code (e.g. compiled configs reusing earlier graphs) are not served
    assert _served(tiny_task, cpu_cache, tmp_path)
    monkeypatch.setattr(evaluator_module, "MEASUREMENT_VERSION", evaluator_module.MEASUREMENT_VERSION + 1)
    assert not _served(tiny_task, cpu_cache, tmp_path)


def test_another_cpu_or_python_misses(tmp_path, tiny_task, cpu_cache, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(fingerprint_module, "cpu_name", lambda: "Some Other CPU @ 1.0GHz")
        assert not _served(tiny_task, cpu_cache, tmp_path)
    # the same name on another host: a VM calls both "AMD EPYC", the instruction sets tell them apart
    for fact, other in (("cpu_isa", lambda: "avx2 avx512f avx512_bf16"), ("cpu_model", lambda: "family 25, model 17")):
        with monkeypatch.context() as patch:
            patch.setattr(fingerprint_module, fact, other)
            assert not _served(tiny_task, cpu_cache, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(platform, "python_version", lambda: "3.99.0")
        assert not _served(tiny_task, cpu_cache, tmp_path)
    assert _served(tiny_task, cpu_cache, tmp_path)


def _fake_nvidia_smi(folder: Path, listing: str) -> str:
    """An nvidia-smi that answers the fingerprint's query with ``listing``; returns a PATH that finds it."""
    folder.mkdir(parents=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nif [ \"$1\" = -L ]; then cat <<'END'\n{GPU_LIST}END\nexit 0; fi\n"
                      f"cat <<'END'\n{listing}END\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_gpu_visibility_name_and_driver_miss(tmp_path, tiny_task, monkeypatch):
    """A CUDA task on a (pretend) two-GPU machine; the CPU-only torch here makes it a real, cached infeasible."""
    cuda_task = dataclasses.replace(tiny_task, device="cuda")
    cache = tmp_path / "cache"
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "two", TWO_GPUS))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with Evaluator(cuda_task, tmp_path / "base", cache_dir=cache) as evaluator:
        assert evaluator.fingerprint["device_count"] == 2
        assert evaluator.fingerprint["device_name"] == "NVIDIA H100 80GB HBM3"
        record = evaluator.evaluate(INFEASIBLE_HERE)
        assert record.status == "infeasible" and "no CUDA device" in record.error["message"], record.error
    assert _served(cuda_task, cache, tmp_path)
    # `--envs N` gives each worker one GPU: its results are not the whole machine's
    assert not _served(cuda_task, cache, tmp_path, worker_env={"CUDA_VISIBLE_DEVICES": "0"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert not _served(cuda_task, cache, tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")  # the same two GPUs, named by UUID
    assert _served(cuda_task, cache, tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-cccc")  # a slice of GPU 0 is not the whole GPU
    with Evaluator(cuda_task, tmp_path / "mig") as evaluator:
        assert evaluator.fingerprint["device_name"] == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
        assert evaluator.fingerprint["device_count"] == 1
    assert not _served(cuda_task, cache, tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU at all
    assert not _served(cuda_task, cache, tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "driver", TWO_GPUS.replace("550.54.15", "560.35.03")))
    assert not _served(cuda_task, cache, tmp_path)
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "name", TWO_GPUS.replace("H100", "H200")))
    assert not _served(cuda_task, cache, tmp_path)


def test_one_gpu_of_a_kind_shares_results_with_another(tmp_path, tiny_task, monkeypatch):
    """Two `--envs` workers on identical GPUs 0 and 1 share one cache; on different models they do not."""
    cuda_task = dataclasses.replace(tiny_task, device="cuda")
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "same", TWO_GPUS))
    first = Evaluator(cuda_task, tmp_path / "w0", worker_env={"CUDA_VISIBLE_DEVICES": "0"})
    second = Evaluator(cuda_task, tmp_path / "w1", worker_env={"CUDA_VISIBLE_DEVICES": "1"})
    config = cuda_task.space.complete({})
    assert first.key(config) == second.key(config)
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "mixed", TWO_GPUS.replace("1, GPU-bbbb, NVIDIA H100",
                                                                                       "1, GPU-bbbb, NVIDIA A100")))
    first = Evaluator(cuda_task, tmp_path / "w0", worker_env={"CUDA_VISIBLE_DEVICES": "0"})
    second = Evaluator(cuda_task, tmp_path / "w1", worker_env={"CUDA_VISIBLE_DEVICES": "1"})
    assert first.key(config) != second.key(config)
    assert second.fingerprint["device_name"] == "NVIDIA A100 80GB HBM3"
