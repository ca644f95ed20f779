"""Benchmark: goodput at the same Poisson load for (a) transformers serve without continuous batching (one
``generate`` per request, what a static-batch deployment serves like), (b) continuous batching with the engine's
own defaults, (c) the best config ``infertune tune`` finds on the serving task in a budget of 12; and the harness's
overhead per trial (server start, warm-up, accuracy, load generator start-up) as a share of wall time.

    python benchmarks/serving.py [--task envs/smollm2-cpu-serving.yaml] [--run RUN | --budget 12]
                                 [--tune-on envs/smollm2-cpu-serving-replay.yaml | --rate 4]
                                 [--rates 2,4] [--out DIR]

``--tune-on`` runs the budget-12 search on the recorded serving landscape of the same task (each config there
was measured under the same load and SLOs), so (c) costs seconds instead of 12 live measurements; (a), (b) and
(c) are then measured live, side by side. ``--rates`` measures (b) and (c) again at other arrival rates of the
same load (same requests, same seed), to show where the engine's defaults stop keeping up and whether the
tuned config does better there. ``--rate`` tunes and measures at another arrival rate altogether: a copy of
the task with only ``workload.rate`` changed (saved in ``--out``), searched live.

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

import yaml

from tuner.evaluation.session import best_record
from tuner.measure.backends.model_store import models_dir
from tuner.records import read_records
from tuner.serving.measurer import ServingMeasurer
from tuner.task import ServingWorkload, TaskSpec, load_task

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


def task_at_rate(task_file: Path, rate: float, out: Path) -> Path:
    """A copy of a serving task file with only its arrival rate (and so its id) changed."""
    data = yaml.safe_load(task_file.read_text())
    data["workload"]["rate"] = rate
    data["id"] = f"{data.get('id') or task_file.stem}-{rate:g}rps"
    copy = out / f"{data['id']}.yaml"
    copy.write_text(f"# {task_file} at {rate:g} requests/s (benchmarks/serving.py --rate)\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return copy


def measure(task: TaskSpec, config: dict[str, Any], work_dir: Path, runs_dir: Path,
            continuous_batching: bool) -> dict[str, Any]:
    """One config of the task under its load, on a server of its own; the reply plus the trial's wall time."""
    measurer = ServingMeasurer(task.worker_spec(), task.space, work_dir, task.device, models_dir(runs_dir),
                               continuous_batching=continuous_batching)
    started = time.perf_counter()
    try:
        reply = measurer.request({"op": "measure", "config": config}, timeout_s=task.timeout_s)
    finally:
        measurer.close()
    reply["wall_s"] = time.perf_counter() - started
    return reply


def row(name: str, rate: float | None, config: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """The figures the README quotes for one variant at one arrival rate."""
    metrics, runs = reply["metrics"], reply["info"].get("runs", [])
    load_s = sum(run.get("load_s") or 0.0 for run in runs)
    return {"variant": name, "rate": rate, "status": reply["status"], "config": json.dumps(config, sort_keys=True),
            "goodput_rps": metrics.get("goodput_rps"), "requests_per_s": metrics.get("requests_per_s"),
            "output_tokens_per_s": metrics.get("output_tokens_per_s"),
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
    parser.add_argument("--rate", type=float, help="tune and measure at this arrival rate (requests/s) instead of "
                        "the task's, searching live")
    parser.add_argument("--rates", default="", help="comma-separated arrival rates (requests/s) at which to "
                        "measure (b) and (c) again")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "serving")
    args = parser.parse_args()
    try:
        rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    except ValueError:
        parser.error(f"argument --rates: comma-separated numbers of requests per second (got {args.rates!r})")
    if any(rate <= 0 for rate in rates):
        parser.error(f"argument --rates: each rate must be > 0 (got {args.rates!r})")
    if args.rate is not None and (args.rate <= 0 or args.tune_on):
        parser.error(f"argument --rate: a rate > 0, without --tune-on (a landscape recorded at another rate) "
                     f"(got {args.rate})")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.rate is not None:
        args.task = task_at_rate(args.task, args.rate, args.out)
    task = load_task(args.task)
    best = tuned_best(args.tune_on or args.task, args.runs_dir, args.run, args.budget)
    print(f"(c) is the best config of a budget-{args.budget} optuna search on {args.tune_on or args.task}: {best}")
    variants = [("a: no continuous batching", {"dtype": best.get("dtype", "float32")}, False),
                ("b: continuous batching, engine defaults", {}, True),
                ("c: tuned by infertune", best, True)]
    base_rate = task.workload.rate if isinstance(task.workload, ServingWorkload) else None
    plan = [(name, base_rate, task, config, continuous) for name, config, continuous in variants]
    plan += [(name, rate, load_task(task_at_rate(args.task, rate, args.out)), config, True)
             for rate in rates for name, config, _ in variants[1:]]
    rows = []
    for index, (name, rate, variant_task, config, continuous) in enumerate(plan):
        print(f"[{index + 1}/{len(plan)}] measuring {name} at {rate} req/s: {config}", flush=True)
        rows.append(row(name, rate, config, measure(variant_task, config, args.out / f"variant{index}", args.runs_dir,
                                                  continuous)))
        print(f"  {rows[-1]}", flush=True)
    with open(args.out / "serving.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "serving.json").write_text(json.dumps(rows, indent=1))
    print("\n| variant | offered req/s | status | goodput req/s | req/s | TTFT p95 s | ITL p95 s | harness share "
          "of wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in rows:
        print(f"| {entry['variant']} | {shown(entry['rate'], 'g')} | {entry['status']} | "
              f"{shown(entry['goodput_rps'], '.2f')} | {shown(entry['requests_per_s'], '.2f')} | "
              f"{shown(entry['ttft_p95_s'], '.3f')} | "
              f"{shown(entry['itl_p95_s'], '.4f')} | {shown(entry['harness_share'], '.0%')} |")
    for b_row, c_row in [(rows[1], rows[2])] + list(zip(rows[3::2], rows[4::2], strict=True)):
        b, c = b_row["goodput_rps"], c_row["goodput_rps"]
        ratio = f"{c / b:.2f}x" if isinstance(b, float) and isinstance(c, float) and b > 0 else "n/a"
        print(f"(c) / (b) goodput at {shown(b_row['rate'], 'g')} req/s: {ratio} (target >= 1.5x)")
    print(f"saved {args.out / 'serving.csv'} and serving.json")


if __name__ == "__main__":
    main()
