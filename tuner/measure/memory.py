"""Memory figures: a config's own resident weights and generation peak, the process's RSS, what is free.

``peak_mem_mb`` of a config (design §5) = the bytes of the model it runs (parameters, buffers and quantized
tensors, tied weights once) + the peak bytes its generate call allocates above what was allocated before
(KV cache, activations, logits). Neither counts other models the worker keeps, so the figure does not
depend on what was measured before. torch is imported lazily: ``import tuner`` stays cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MB = 2**20


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS of the whole process since the last reset (VmHWM), else since process start."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def available_bytes(device: str) -> int:
    """Memory a new model could still take: free GPU memory, or the kernel's MemAvailable on the CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30  # no /proc: assume a modest machine


def release_freed(device: str) -> None:
    """Hand memory of dropped models back (Python garbage, glibc's free lists, the CUDA cache)."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def evict_least_recent(models: OrderedDict[Any, Any], size_of: Callable[[Any], int], needed: int, budget: int,
                       device: str) -> None:
    """Drop the least recently used of ``models`` until ``needed`` more bytes fit ``budget``; free what they held."""
    evicted = False
    while models and sum(size_of(entry) for entry in models.values()) + needed > budget:
        models.popitem(last=False)
        evicted = True
    if evicted:
        release_freed(device)


def _tensor_bytes(value: Any, seen: set[int]) -> int:
    """Bytes behind a state-dict value: tensors, quantized tensor subclasses, packed (weight, bias) tuples."""
    import torch

    if isinstance(value, tuple | list):
        return sum(_tensor_bytes(item, seen) for item in value)
    if not isinstance(value, torch.Tensor):
        return 0
    if type(value) not in (torch.Tensor, torch.nn.Parameter) and hasattr(value, "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()  # torchao: the int8/int4 data and scales it really stores
        return sum(_tensor_bytes(getattr(value, name, None), seen) for name in names)
    pointer = value.data_ptr()
    if pointer in seen:  # tied weights (embedding = LM head) are resident once
        return 0
    seen.add(pointer)
    return value.numel() * value.element_size()


def model_bytes(model: Any) -> int:
    """Resident bytes of a model's own tensors: parameters, buffers (persistent or not), quantized weights."""
    seen: set[int] = set()
    values = list(model.state_dict(keep_vars=True).values()) + list(model.buffers())
    return sum(_tensor_bytes(value, seen) for value in values)


def generation_peak(run: Callable[[], Any], device: str) -> tuple[int, set[str], Any]:
    """Run ``run`` once; (peak bytes it allocated above what was allocated before, aten ops it ran, its result).

    CUDA: the allocator's peak counter; CPU: the profiler's allocation events (exact, unlike the RSS,
    which also moves with the heap the earlier configs left behind).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=not cuda) as profiler:
        result = run()
    events = profiler.profiler.kineto_results.events()
    ops = {event.name() for event in events if event.name().startswith("aten::")}
    if cuda:
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - before), ops, result
    live = peak = 0
    for event in sorted((event for event in events if event.name() == "[memory]"), key=lambda item: item.start_ns()):
        if event.device_type() == torch.autograd.DeviceType.CPU:
            live += event.nbytes()  # negative for a free
            peak = max(peak, live)
    return peak, ops, result
