"""Benchmark: does a tensor-parallel rank's memory stay flat when it measures config after config?

Measures one shard_count=2 config of a task again and again in one worker (no cache) and prints, after each
measurement, the resident memory of every rank process. A rank keeps its models loaded between configs, so
its RSS should stop growing after the first measurement; before the ranks trimmed their heap after each
measurement it grew by ~770 MB a SmolLM2 decode config.

    python benchmarks/shard_rank_memory.py [--task envs/recordings/library/smollm2-decode.yaml] [--repeats 3]
                                           [--out runs/benchmarks/shard-rank-memory]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import time
from pathlib import Path

from tuner.evaluation.evaluator import Evaluator
from tuner.task import load_task

CONFIG = {"batch_size": 4, "dtype": "float32", "quantization": "none", "attn_implementation": "sdpa",
          "cache_implementation": "dynamic", "compile": False, "shard_count": 2}


def ranks_rss_mb() -> list[int]:
    """Resident memory of each live rank process (spawned by the worker's shard group), in MiB."""
    listing = subprocess.run(["ps", "-eo", "rss,args"], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) // 1024 for line in listing.splitlines()
            if "spawn_main" in line and "tracker_fd" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="envs/recordings/library/smollm2-decode.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-measure-s", type=float, default=30.0, help="shorter timing than the task's")
    parser.add_argument("--out", default="runs/benchmarks/shard-rank-memory")
    args = parser.parse_args()
    task = load_task(Path(args.task))
    workload = dataclasses.replace(task.workload, max_measure_s=args.max_measure_s, max_repeats=3)
    task = dataclasses.replace(task, workload=workload)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with Evaluator(task, out / "run", use_cache=False) as evaluator:
        for repeat in range(1, args.repeats + 1):
            started = time.perf_counter()
            record = evaluator.evaluate(CONFIG)
            row = {"measurement": repeat, "status": record.status, "seconds": round(time.perf_counter() - started),
                   "ranks_rss_mb": ranks_rss_mb(), "foreign_cpu_cores": record.info.get("foreign_cpu_cores")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "shard_rank_memory.json").write_text(json.dumps({"task": task.id, "config": CONFIG, "rows": rows},
                                                           indent=1))
    print(f"saved {out}/shard_rank_memory.json")


if __name__ == "__main__":
    main()
