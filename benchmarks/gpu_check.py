"""GPU check: SmolLM2 over the CUDA fast paths, next to design §12's reference numbers, in one command.

Measures float32/bfloat16 x sdpa x (dynamic cache | static cache + torch.compile) x batch 1/16/64, the
"just call generate" default (float32, eager, batch 1), torchao int8/int4 weight-only when installed,
then one config sized to run out of GPU memory, and one more config to show the worker recovered.
Every row goes through the real evaluator (worker subprocess, timing protocol, accuracy vs float32).

    python benchmarks/gpu_check.py                       # on a GPU machine, a few minutes
    python benchmarks/gpu_check.py --out DIR --batches 1,16,64 --new-tokens 64
    python benchmarks/gpu_check.py --env envs/tiny-cpu.yaml --device cpu --dtypes float32 --batches 2 --no-oom
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from tuner.evaluation.evaluator import Evaluator
from tuner.space.loader import find_space, read_yaml, space_from_dict
from tuner.task import TaskSpec, load_task
from tuner.util.formatting import table

# design §12 (one H100 80GB, 64 new tokens): tokens/s by (dtype, attention, compiled, batch)
DESIGN_TOKENS_PER_S = {("float32", "eager", False, 1): 45, ("float32", "sdpa", False, 64): 2580,
                       ("bfloat16", "sdpa", True, 1): 245, ("bfloat16", "sdpa", True, 64): 10800}
TORCHAO_ROWS = ("int8-weight-only", "int4-weight-only")
OOM_BATCH = 1 << 18  # float32 prefill of 2^18 prompts needs > 100 GiB of activations: no single GPU has that


def plan(dtypes: list[str], batches: list[int], with_torchao: bool, oom: bool,
         compiled_rows: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """The (label, config) rows in the order they are measured."""
    rows = [("default", {"dtype": "float32", "attn_implementation": "eager", "batch_size": 1})]
    for dtype in dtypes:
        for compiled in (False, True) if compiled_rows else (False,):
            for batch in batches:
                cache = {"cache_implementation": "static", "compile": True} if compiled else {}
                rows.append(("grid", {"dtype": dtype, "attn_implementation": "sdpa", "batch_size": batch, **cache}))
    if with_torchao:
        middle = batches[len(batches) // 2]
        for quantization in TORCHAO_ROWS:
            rows.append(("torchao", {"dtype": "bfloat16", "quantization": quantization, "batch_size": middle}))
    if oom:
        rows.insert(2, ("sized to OOM", {"dtype": "float32", "batch_size": OOM_BATCH}))
    return rows


def check_task(env: Path, device: str, new_tokens: int, num_requests: int, max_measure_s: float,
               batches: list[int]) -> TaskSpec:
    """The task of ``env`` on ``device``, its workload resized, its batch-size knob holding the check's sizes."""
    task = load_task(env)
    space_file = find_space(task.space.id, env)
    data = read_yaml(space_file)
    knob = data["knobs"]["batch_size"]
    knob["choices"] = sorted({*knob["choices"], *batches, OOM_BATCH})
    quantization = data["knobs"]["quantization"]  # the torchao rows, whatever the task's own space holds
    quantization["choices"] = [*quantization["choices"],
                               *(value for value in TORCHAO_ROWS if value not in quantization["choices"])]
    space = space_from_dict(data, str(space_file))
    workload = dataclasses.replace(task.workload, new_tokens=new_tokens, num_requests=num_requests,
                                   max_measure_s=max_measure_s, max_repeats=5)
    return dataclasses.replace(task, id=f"{task.id}-gpu-check", device=device, space=space, workload=workload,
                               timeout_s=max(task.timeout_s, 900))


def row_of(label: str, record: Any, on_gpu: bool) -> dict[str, Any]:
    """One result row: what ran and what it measured (with §12's number where it measured the same on a GPU)."""
    config, metrics = record.config, record.metrics
    compiled = bool(config["compile"])
    design = DESIGN_TOKENS_PER_S.get((config["dtype"], config["attn_implementation"], compiled, config["batch_size"]))
    return {
        "label": label, "dtype": config["dtype"], "attention": config["attn_implementation"],
        "cache": "static+compile" if compiled else config["cache_implementation"],
        "quantization": config["quantization"], "batch": config["batch_size"], "status": record.status,
        "tokens_per_s": metrics.get("tokens_per_s"), "tpot_ms": 1000 * metrics["tpot_s"] if metrics else None,
        "ttft_ms": 1000 * metrics["ttft_s"] if metrics else None, "warmup_s": metrics.get("warmup_s"),
        "graphs_compiled": record.info.get("graphs_compiled_in_warmup"), "peak_mem_mb": metrics.get("peak_mem_mb"),
        "top1_agree": metrics.get("top1_agree"), "kl": metrics.get("kl"),
        "design_tokens_per_s": design if on_gpu and config["quantization"] == "none" else None,
        "fresh_worker": record.info.get("loaded_weights"),
        "error": (record.error or {}).get("message", "")[:120],
    }


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.1e}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The results as a text table."""
    header = ["config", "batch", "status", "tok/s", "§12 tok/s", "tpot ms", "ttft ms", "warmup s", "graphs",
              "peak MiB", "top1", "kl"]
    body = [[f"{row['dtype']} {row['attention']} {row['cache']}"
             + (f" {row['quantization']}" if row["quantization"] != "none" else ""), row["batch"], row["status"],
             _cell(row["tokens_per_s"]), _cell(row["design_tokens_per_s"]), _cell(row["tpot_ms"], 2),
             _cell(row["ttft_ms"], 1), _cell(row["warmup_s"], 1), _cell(row["graphs_compiled"], 0),
             _cell(row["peak_mem_mb"], 0), _cell(row["top1_agree"], 3), _cell(row["kl"], 4)] for row in rows]
    print(table(header, body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", type=Path, default=Path("envs/smollm2-cpu.yaml"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--new-tokens", type=int, default=64, help="design §12 uses 64")
    parser.add_argument("--num-requests", type=int, default=4, help="requests per timed pass")
    parser.add_argument("--max-measure-s", type=float, default=15.0)
    parser.add_argument("--no-oom", action="store_true", help="skip the out-of-memory config (CPU smoke runs)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the static cache + torch.compile rows (when a landscape measures them anyway)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/benchmarks/gpu-check-<time>")
    args = parser.parse_args()

    batches = [int(value) for value in args.batches.split(",")]
    task = check_task(args.env, args.device, args.new_tokens, args.num_requests, args.max_measure_s, batches)
    out = args.out or Path("runs") / "benchmarks" / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    rows_to_run = plan(args.dtypes.split(","), batches, importlib.util.find_spec("torchao") is not None,
                       oom=not args.no_oom, compiled_rows=not args.no_compile)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    with Evaluator(task, out / "run", use_cache=False) as evaluator:
        print(f"device: {evaluator.fingerprint['device_name']} ({evaluator.fingerprint['device']}), "
              f"torch {evaluator.fingerprint['torch']}, transformers {evaluator.fingerprint['transformers']}")
        for index, (label, config) in enumerate(rows_to_run, 1):
            print(f"[{index}/{len(rows_to_run)}] {label}: {config}", flush=True)
            record = evaluator.evaluate(config)
            results.append(row_of(label, record, evaluator.fingerprint["device"] == "cuda"))
            print(f"    {record.status}  {_cell(record.metrics.get('tokens_per_s'))} tok/s  "
                  f"warmup {_cell(record.metrics.get('warmup_s'))} s  {results[-1]['error']}", flush=True)
            (out / "gpu_check.json").write_text(json.dumps(results, indent=1))  # kept even if the run is cut off
        worker_starts = evaluator.measurer.starts
    with open(out / "gpu_check.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    print_table(results)
    oom_rows = [row for row in results if row["label"] == "sized to OOM"]
    if oom_rows:
        after = results[results.index(oom_rows[0]) + 1]
        print(f"out-of-memory config: {oom_rows[0]['status']}; next config: {after['status']} "
              f"(worker processes started: {worker_starts})")
    print(f"{len(results)} configs in {time.perf_counter() - started:.0f} s; saved {out / 'gpu_check.csv'}")


if __name__ == "__main__":
    main()
