"""Benchmark: the main job, live. The default agent, Optuna and random search under a wall-clock budget.

Each run is `infertune tune TASK [--agent A] --time T --seed S` as a user types it, on the machine at hand, with
a cache of its own (nothing is answered from another run's measurements). Its figure is the tokens/s of the
config it names (the mean of that config's measurements in every run here), over the best known tokens/s:
the best rankable config of the recorded landscape (the knobs that matter:
`infertune record benchmarks/landscapes/smollm2-cpu-key.yaml`) or of any run here, whichever is higher.
Runs are resumable: a finished one is read back, not run again, so a long grid is run in chunks
(`--times 5 --seeds 0` first). Each saved run carries ``VERSION``, bumped when infertune's way of searching or
measuring changes; the table ranks the current version's runs, while every run's readings still value configs.

    python benchmarks/live.py [--agents default,optuna,random] [--times 5,10,20] [--seeds 0,1,2]
    python benchmarks/live.py --report      # the table and plot of every run saved so far (also printed after runs)

Prints a table (mean, min and max of the ratio over seeds, wall time) and saves benchmarks/results/live.json and
live.png (each run's best found so far over best known, against wall-clock minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tuner.evaluation.session import rankable
from tuner.measure.fingerprint import cpu_model
from tuner.objective import score_row
from tuner.records import Record, read_records
from tuner.results.costs import overhead_share, time_split, trial_overhead_mean
from tuner.task import load_task

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPE = ROOT / "benchmarks" / "landscapes" / "smollm2-cpu-key.jsonl"
# 2: compiled graphs reused within a run, the reference's answers cached, cost-aware coordinate search
VERSION = 2


def _best_in_landscape(task_file: Path, landscape: Path) -> tuple[float | None, dict | None]:
    """(tokens/s, config) of the best config of a recorded landscape that meets every bound, stably."""
    objective = load_task(task_file).objective
    best: tuple[float | None, dict | None] = (None, None)
    for row in (json.loads(line) for line in landscape.read_text().splitlines() if line.strip()):
        _, feasible = score_row(objective, row)
        value = (row.get("metrics") or {}).get("tokens_per_s")
        if row["status"] == "ok" and feasible and value is not None and (best[0] is None or value > best[0]):
            best = (value, row["config"])
    return best


def _curve(records: list[Record], started: datetime) -> list[tuple[float, float]]:
    """(minutes since the run started, best rankable tokens/s so far) after each record."""
    points, best = [], 0.0
    for record in records:
        ended = datetime.fromisoformat(record.started_at.replace("Z", "+00:00")).timestamp() + record.duration_s
        if rankable(record):
            best = max(best, record.metrics["tokens_per_s"])
        points.append(((ended - started.timestamp()) / 60, best))
    return points


def _measured(run_dir: Path) -> dict[str, list[float]]:
    """Every config the run measured whole (ok or unstable) inside the bounds, by its JSON, with its tokens/s."""
    readings: dict[str, list[float]] = {}
    for record in read_records(run_dir / "records.jsonl"):
        if (record.status in ("ok", "unstable") and record.feasible
                and record.metrics.get("tokens_per_s") is not None):
            readings.setdefault(json.dumps(record.config, sort_keys=True), []).append(record.metrics["tokens_per_s"])
    return readings


def run_one(task: Path, agent: str, minutes: float, seed: int, runs: Path, out: Path) -> dict:
    """One tune run (or its saved result): what it named, how long it took, where its time went."""
    name = f"live-{agent}-{minutes:g}m-seed{seed}-v{VERSION}"
    saved = out / "live-runs" / f"{name}.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(task), "--time",
               f"{minutes:g}m", "--seed", str(seed), "--no-mlflow", "--no-cache", "--run", name]
    if agent != "default":
        command += ["--agent", agent]
    print(f"{name}: {' '.join(command[2:])}", flush=True)
    started, clock = datetime.now().astimezone(), time.monotonic()
    # compiled graphs of its own, as on a fresh machine: nothing compiled by an earlier run is reused
    with open(out / "live-runs" / f"{name}.log", "w") as log, tempfile.TemporaryDirectory() as compiled:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                              env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": compiled})
    wall = time.monotonic() - clock
    if done.returncode != 0:
        raise SystemExit(f"{name} failed (exit {done.returncode}); see {out / 'live-runs' / (name + '.log')}")
    summary = json.loads((runs / name / "summary.json").read_text())
    records = read_records(runs / name / "records.jsonl")
    best = summary.get("best") or {}
    result = {"run": name, "agent": agent, "agent_ran": summary["agent"].get("name"), "minutes": minutes, "seed": seed,
              "wall_s": wall, "measurements": summary["measurements"], "confirmations": summary.get("confirmations"),
              "pruned": sum(record.status == "pruned" for record in records),
              "unstable": sum(record.status == "unstable" for record in records),
              "best_tokens_per_s": (best.get("metrics") or {}).get("tokens_per_s"), "best_config": best.get("config"),
              "measured": _measured(runs / name),
              "curve": _curve(records, started), "version": VERSION,
              "time_split_s": time_split(records, summary.get("duration_s"))}
    result["overhead_share"] = overhead_share(result["time_split_s"])
    result["trial_overhead_mean"] = trial_overhead_mean(records)
    saved.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", type=Path, default=ROOT / "envs" / "smollm2-cpu.yaml")
    parser.add_argument("--landscape", type=Path, default=LANDSCAPE, help="the best-known landscape on this machine")
    parser.add_argument("--agents", default="default,optuna,random")
    parser.add_argument("--times", default="5,10,20", help="minutes, comma-separated")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "live")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--report", action="store_true", help="run nothing: report every run saved so far")
    args = parser.parse_args()
    (args.out / "live-runs").mkdir(parents=True, exist_ok=True)
    if not args.report:
        for minutes in args.times.split(","):
            for seed in args.seeds.split(","):
                for agent in args.agents.split(","):
                    run_one(args.task, agent, float(minutes), int(seed), args.runs_dir, args.out)
    # every saved run, whatever this invocation ran: the same best known and table as --report
    results = [json.loads(path.read_text()) for path in sorted((args.out / "live-runs").glob("*.json"))]
    args.agents = ",".join(dict.fromkeys(row["agent"] for row in results))
    for row in results:  # a run saved before its readings were: worked out from its run folder, if still there
        folder = args.runs_dir / row["run"]
        if "measured" not in row:
            row["measured"] = _measured(folder)
            (args.out / "live-runs" / f"{row['run']}.json").write_text(json.dumps(row, indent=2))
        if "trial_overhead_mean" not in row and (folder / "records.jsonl").is_file():
            row["trial_overhead_mean"] = trial_overhead_mean(read_records(folder / "records.jsonl"))
            (args.out / "live-runs" / f"{row['run']}.json").write_text(json.dumps(row, indent=2))
    # One config measures 10-20% apart from run to run here: a config's value is the mean of its measurements in
    # every run, so two runs naming the same config score the same, and the best known is no single lucky reading.
    pooled: dict[str, list[float]] = {}
    for row in results:
        for key, values in row["measured"].items():
            pooled.setdefault(key, []).extend(values)
    value_of = {key: sum(values) / len(values) for key, values in pooled.items()}
    for row in results:
        row["named_tokens_per_s"] = value_of.get(json.dumps(row["best_config"], sort_keys=True))
    known, config = _best_in_landscape(args.task, args.landscape) if args.landscape.is_file() else (None, None)
    found = list(value_of.values())  # every config measured whole inside the bounds, named or not
    best_known = max([value for value in [known, *found] if value is not None], default=None)
    source = "landscape" if known is not None and known == best_known else "a run here"
    print(f"\nbest known on {cpu_model()}: {best_known} tok/s ({source}; landscape best {known}, {config})")
    print(f"{'agent':<10} {'time':>5} {'seeds':>5} {'ratio mean':>10} {'min':>6} {'max':>6} {'wall s':>7} "
          f"{'measured':>8} {'pruned':>6} {'overhead':>8} {'of a trial':>10}")
    table = []
    current = [row for row in results if row.get("version", 1) == VERSION]
    for minutes in sorted({row["minutes"] for row in current}):
        for agent in args.agents.split(","):
            rows = [row for row in current if row["agent"] == agent and row["minutes"] == minutes]
            ratios = [(row["named_tokens_per_s"] or 0.0) / best_known for row in rows] if best_known else []
            if not rows or not ratios:
                continue
            entry = {"agent": agent, "minutes": minutes, "seeds": len(rows), "ratio_mean": sum(ratios) / len(ratios),
                     "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "wall_s_mean": sum(row["wall_s"] for row in rows) / len(rows),
                     "measurements_mean": sum(row["measurements"] for row in rows) / len(rows),
                     "pruned_mean": sum(row["pruned"] for row in rows) / len(rows),
                     "overhead_share_mean": _mean([row.get("overhead_share") for row in rows]),
                     "trial_overhead_mean": _mean([row.get("trial_overhead_mean") for row in rows])}
            table.append(entry)
            print(f"{agent:<10} {minutes:>4g}m {len(rows):>5} {entry['ratio_mean']:>10.3f} {entry['ratio_min']:>6.3f} "
                  f"{entry['ratio_max']:>6.3f} {entry['wall_s_mean']:>7.0f} {entry['measurements_mean']:>8.1f} "
                  f"{entry['pruned_mean']:>6.1f} {_shown_share(entry['overhead_share_mean']):>8} "
                  f"{_shown_share(entry['trial_overhead_mean']):>10}")
    report = {"machine": cpu_model(), "task": str(args.task.relative_to(ROOT)), "best_known_tokens_per_s": best_known,
              "best_known_source": source, "landscape_best": {"tokens_per_s": known, "config": config},
              "version": VERSION, "table": table, "runs": results}
    (args.out / "live.json").write_text(json.dumps(report, indent=2))
    if best_known:
        _plot(current, best_known, args.out / "live.png", f"{report['task']} on {cpu_model()} (version {VERSION})")
    print(f"saved {args.out / 'live.json'} and live.png")


def _mean(values: list) -> float | None:
    """The mean of the values present (None when there is none)."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def _shown_share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _plot(results: list[dict], best_known: float, path: Path, title: str) -> None:
    """Each run's best found so far over best known, against wall-clock minutes; a dot where it named its winner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors: dict[str, str] = {}
    labeled: set[str] = set()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for row in results:
        color = colors.setdefault(row["agent"], f"C{len(colors)}")
        minutes = [0.0] + [point[0] for point in row["curve"]]
        ratios = [0.0] + [point[1] / best_known for point in row["curve"]]
        axis.step(minutes, ratios, where="post", color=color, alpha=0.6,
                  label=None if row["agent"] in labeled else row["agent"])
        labeled.add(row["agent"])
        axis.plot([row["wall_s"] / 60], [(row["named_tokens_per_s"] or 0.0) / best_known], "o", color=color)
    axis.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="0.95 of best known")
    axis.set_xlabel("wall-clock minutes (dots: the config each run named, at its end)")
    axis.set_ylabel("best tokens/s found / best known")
    top = max([1.0] + [point[1] / best_known for row in results for point in row["curve"]])
    axis.set_ylim(0, top + 0.05)  # a single measurement can read above the best known (run-to-run noise)
    axis.set_title(title, fontsize=10)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
