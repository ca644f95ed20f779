"""Benchmark: goodput at the same Poisson load for (a) transformers serve without continuous batching (one
``generate`` per request, what a static-batch deployment serves like), (b) continuous batching with the engine's
own defaults, (c) the best config ``infertune tune`` finds on the serving task in a budget of 12; and the harness's
overhead per trial (server start, warm-up, accuracy, load generator start-up) as a share of wall time.

    python benchmarks/serving.py [--task envs/smollm2-cpu-serving.yaml] [--run RUN | --budget 12]
                                 [--tune-on envs/smollm2-cpu-serving-replay.yaml] [--out DIR]

``--tune-on`` runs the budget-12 search on the recorded serving landscape of the same task (each config there
was measured under the same load and SLOs), so (c) costs seconds instead of 12 live measurements; (a), (b) and
(c) are then measured live, side by side.

Target (issue 12): (c) >= 1.5x the goodput of (b) at the same SLOs, or the measured reason why not.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tuner.measure.backends.knobs import models_dir
from tuner.records import read_records
from tuner.serving.measurer import ServingMeasurer
from tuner.session import best_record
from tuner.task import load_task

ROOT = Path(__file__).resolve().parents[1]


def tuned_best(task_file: Path, runs_dir: Path, run: str | None, budget: int) -> dict[str, Any]:
    """The best deployable config of a finished tune run, running ``infertune tune`` first when none is named."""
    if run is None:
        run = f"serving-bench-optuna-b{budget}-{load_task(task_file).id}"
        subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs_dir), "tune", str(task_file),
                        "--agent", "optuna", "--budget", str(budget), "--run", run, "--no-mlflow"], check=True)
    best = best_record(read_records(runs_dir / run / "records.jsonl"))
    if best is None:
        raise SystemExit(f"run {run} has no deployable config to compare")
    return best.config


def measure(task_file: Path, config: dict[str, Any], work_dir: Path, continuous_batching: bool) -> dict[str, Any]:
    """One config of the task under its load, on a server of its own; the reply plus the trial's wall time."""
    task = load_task(task_file)
    measurer = ServingMeasurer(task.worker_spec(), task.space, work_dir, task.device, models_dir(work_dir.parent),
                               continuous_batching=continuous_batching)
    started = time.perf_counter()
    try:
        reply = measurer.request({"op": "measure", "config": config}, timeout_s=task.timeout_s)
    finally:
        measurer.close()
    reply["wall_s"] = time.perf_counter() - started
    return reply


def row(name: str, config: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """The figures the README quotes for one variant."""
    metrics, runs = reply["metrics"], reply["info"].get("runs", [])
    load_s = sum(run.get("load_s") or 0.0 for run in runs)
    return {"variant": name, "status": reply["status"], "config": json.dumps(config, sort_keys=True),
            "goodput_rps": metrics.get("goodput_rps"), "requests_per_s": metrics.get("requests_per_s"),
            "ttft_p95_s": metrics.get("ttft_p95_s"), "itl_p95_s": metrics.get("itl_p95_s"),
            "server_start_s": metrics.get("server_start_s"), "warmup_s": metrics.get("warmup_s"),
            "wall_s": reply["wall_s"], "harness_share": 1.0 - load_s / reply["wall_s"] if reply["wall_s"] else None,
            "error": (reply.get("error") or {}).get("message")}


def shown(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", type=Path, default=ROOT / "envs" / "smollm2-cpu-serving.yaml")
    parser.add_argument("--run", help="a finished tune run on the task whose best config is (c)")
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--tune-on", type=Path, help="search for (c) on this task instead (the recorded landscape "
                        "of --task, replayed)")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "serving")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    best = tuned_best(args.tune_on or args.task, args.runs_dir, args.run, args.budget)
    print(f"(c) is the best config of a budget-{args.budget} optuna search on {args.tune_on or args.task}: {best}")
    variants = [("a: no continuous batching", {"dtype": best.get("dtype", "float32")}, False),
                ("b: continuous batching, engine defaults", {}, True),
                ("c: tuned by infertune", best, True)]
    rows = []
    for index, (name, config, continuous) in enumerate(variants):
        print(f"measuring {name}: {config}", flush=True)
        rows.append(row(name, config, measure(args.task, config, args.out / f"variant{index}", continuous)))
        print(f"  {rows[-1]}", flush=True)
    with open(args.out / "serving.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "serving.json").write_text(json.dumps(rows, indent=1))
    print("\n| variant | status | goodput req/s | req/s | TTFT p95 s | ITL p95 s | harness share of wall time |")
    print("|---|---|---|---|---|---|---|")
    for entry in rows:
        print(f"| {entry['variant']} | {entry['status']} | {shown(entry['goodput_rps'], '.2f')} | "
              f"{shown(entry['requests_per_s'], '.2f')} | {shown(entry['ttft_p95_s'], '.3f')} | "
              f"{shown(entry['itl_p95_s'], '.4f')} | {shown(entry['harness_share'], '.0%')} |")
    b, c = rows[1]["goodput_rps"], rows[2]["goodput_rps"]
    if isinstance(b, float) and isinstance(c, float) and b > 0:
        print(f"\n(c) / (b) goodput: {c / b:.2f}x (target >= 1.5x)")
    print(f"saved {args.out / 'serving.csv'} and serving.json")


if __name__ == "__main__":
    main()
