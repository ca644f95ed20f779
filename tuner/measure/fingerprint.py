"""Hardware/software fingerprint, read without importing torch so that cache lookups stay cheap.

Everything here can change a measured number, so all of it goes into the cache key and into each record.
The environment a fingerprint describes is the worker's (``env``), not necessarily this process's: a
worker started with ``CUDA_VISIBLE_DEVICES=1`` sees one GPU even when the machine has eight.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from importlib import metadata
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # they change CPU timings as much as the core count


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# Instruction sets that decide which CPU kernels run (bfloat16 is emulated without AVX512-BF16 or AMX: on the
# same "AMD EPYC" name, SmolLM2 in bfloat16 at batch 16 ran 244 tokens/s on a Zen 4 host and 27 on a Zen 3 one).
CPU_ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_tile")


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


@functools.cache
def cpu_model() -> str:
    """Family, model and stepping: a VM may show every EPYC as "AMD EPYC", these still tell Zen 3 from Zen 4."""
    fields = _cpuinfo_fields()
    parts = [f"{key.replace('cpu ', '')} {fields[key]}" for key in ("cpu family", "model", "stepping") if key in fields]
    return ", ".join(parts) or platform.machine()


@functools.cache
def cpu_isa() -> str:
    """The kernel-relevant instruction sets the CPU has (CPU_ISA), space-separated."""
    flags = set(_cpuinfo_fields().get("flags", "").split())
    return " ".join(name for name in CPU_ISA if name in flags)


@functools.cache
def _nvidia_listing(executable: str) -> tuple[tuple[str, str, str, str], ...]:
    """(index, uuid, name, driver) of every GPU ``executable`` (nvidia-smi) lists; asks nvidia-smi, never CUDA."""
    try:
        lines = subprocess.run(
            [executable, "--query-gpu=index,uuid,name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return ()
    rows = [tuple(field.strip() for field in line.split(",")) for line in lines]
    return tuple(row for row in rows if len(row) == 4)  # type: ignore[misc]


@functools.cache
def _mig_names(executable: str) -> dict[str, str]:
    """MIG instance UUID -> "<GPU name> MIG <profile>", from ``nvidia-smi -L``."""
    try:
        lines = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=20,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    names, gpu = {}, ""
    for line in lines:  # "GPU 0: NVIDIA H200 (UUID: GPU-…)" then "  MIG 1g.18gb Device 0: (UUID: MIG-…)"
        text, _, uuid = line.strip().rstrip(")").partition("(UUID: ")
        if text.startswith("GPU "):
            gpu = text.split(":", 1)[1].strip()
        elif text.startswith("MIG ") and uuid:
            names[uuid.strip()] = f"{gpu} MIG {text.split()[1]}"
    return names


def _listed_gpus() -> tuple[tuple[str, str, str, str], ...]:
    executable = shutil.which("nvidia-smi")
    return _nvidia_listing(executable) if executable else ()


def _resolve_visible(entry: str, listed: tuple[tuple[str, str, str, str], ...]) -> tuple[str, str] | None:
    """(name, driver) of one CUDA_VISIBLE_DEVICES entry: an index, a GPU UUID (or its prefix) or a MIG UUID."""
    if entry.startswith("MIG-") and listed:
        executable = shutil.which("nvidia-smi")
        name = _mig_names(executable).get(entry) if executable else None
        return (name or f"{listed[0][2]} MIG", listed[0][3])
    match = [row for row in listed if entry and (row[0] == entry or row[1].startswith(entry))]
    return (match[0][2], match[0][3]) if match else None


def visible_gpus(env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(name, driver) of each GPU a process with ``env`` sees: nvidia-smi's list limited by CUDA_VISIBLE_DEVICES."""
    listed = _listed_gpus()
    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [(name, driver) for _, _, name, driver in listed]
    chosen = []
    for entry in (part.strip() for part in visible.split(",")):
        gpu = _resolve_visible(entry, listed)
        if gpu is None:
            break  # CUDA stops at the first entry it cannot resolve
        chosen.append(gpu)
    return chosen


def cuda_usable() -> bool:
    """Whether an NVIDIA GPU is visible and the installed torch is not a CPU-only build."""
    return bool(visible_gpus()) and "+cpu" not in _version("torch")


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, which taskset or a container limits)."""
    return len(os.sched_getaffinity(0))


def device_count(device: str, env: Mapping[str, str] | None = None) -> int:
    """How many devices a tensor-parallel model can span: GPUs for CUDA, usable cores for the CPU."""
    if device == "cuda":
        return len(visible_gpus(env)) if "+cpu" not in _version("torch") else 0
    return cpu_cores()


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``."""
    if device == "auto":
        return "cuda" if cuda_usable() else "cpu"
    return device


def fingerprint(device: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a measurement on ``device`` depends on besides the config: devices, cores, driver, library versions.

    ``env`` is the measuring process's environment (default: this process's).
    """
    variables = os.environ if env is None else env
    gpus = visible_gpus(variables) if device == "cuda" else []
    return {
        "device": device,
        "device_name": ", ".join(sorted({name for name, _ in gpus})) if gpus else cpu_name(),
        "device_count": len(gpus) if device == "cuda" else cpu_cores(),
        "cpu_cores": cpu_cores(),
        "cpu_model": cpu_model(),
        "cpu_isa": cpu_isa(),
        "threads": " ".join(f"{name}={variables[name]}" for name in THREAD_VARIABLES if name in variables),
        "driver": ", ".join(sorted({driver for _, driver in gpus})),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "torchao": _version("torchao"),
        "mslk": _version("mslk"),  # torchao's int4 kernels since 0.16: installing it makes int4 feasible
        "python": platform.python_version(),
    }
