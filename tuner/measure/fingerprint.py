"""Hardware/software fingerprint, read without importing torch so that cache lookups stay cheap."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from importlib import metadata


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _nvidia_gpu() -> tuple[str, str] | None:
    """(name, driver) of the first NVIDIA GPU, or None; asks nvidia-smi, never CUDA."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        line = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    name, _, driver = line.partition(",")
    return name.strip(), driver.strip()


def cuda_usable() -> bool:
    """Whether an NVIDIA GPU is visible and the installed torch is not a CPU-only build."""
    return _nvidia_gpu() is not None and "+cpu" not in _version("torch")


@functools.cache
def _nvidia_gpu_count() -> int:
    """GPUs nvidia-smi lists, limited by CUDA_VISIBLE_DEVICES the way CUDA limits them."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=20, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(listed)
    return len([entry for entry in visible.split(",") if entry.strip()][:len(listed)])


def device_count(device: str) -> int:
    """How many devices a tensor-parallel model can span: GPUs for CUDA, usable cores for the CPU."""
    if device == "cuda":
        return _nvidia_gpu_count() if cuda_usable() else 0
    return len(os.sched_getaffinity(0))


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``."""
    if device == "auto":
        return "cuda" if cuda_usable() else "cpu"
    return device


def fingerprint(device: str) -> dict[str, str]:
    """What a measurement depends on besides the config: device, driver, library versions."""
    gpu = _nvidia_gpu() if device == "cuda" else None
    return {
        "device": device,
        "device_name": gpu[0] if gpu else _cpu_name(),
        "driver": gpu[1] if gpu else "",
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "python": platform.python_version(),
    }
