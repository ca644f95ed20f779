"""Benchmark: which searcher should ``tune`` run by default? Coordinate search against the others, by replay.

Coordinate search (``--agent coordinate``) learns nothing from other landscapes, so it runs on every landscape of
the library as it is, from the space's default config, at budgets 4, 8, 12 and 16 over the seeds (its only
randomness is the order of the nearby configs it tries once its passes change nothing). The other agents'
figures are read from benchmarks/results/transfer.json (benchmarks/transfer.py: leave-one-landscape-out, the
pretrained policy never trained on the landscape it tunes). Also the landscapes of benchmarks/landscapes/
(recorded on other machines), which no agent trained on. Reported: best found / optimum, mean and 95% interval
over (landscape, seed), and the measurements to reach 95% of the optimum (budget + 1 when never).

    python benchmarks/searchers.py [--seeds 5]

Cost: a replayed measurement costs what the recorded one took (its ``duration_s``: load, compile, timing,
accuracy). So coordinate search is also judged against the clock, at time budgets worth 4, 8, 12 and 16 of the
landscape's median measurement, with and without its cost awareness (screening a costly move on its cheap twin).

Saves benchmarks/results/searchers.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tuner.agents.coordinate_search import CoordinateAgent
from tuner.evaluation.session import rankable
from tuner.learning.transfer import mean_ci, measurements_to_target, replay_task, run_agent
from tuner.library.catalog import load_library
from tuner.library.landscape import config_tuple, load_landscape
from tuner.run.tune import run_tune
from tuner.util.numbers import is_number, percentile

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (4, 8, 12, 16)
OTHERS = ROOT / "benchmarks" / "results" / "transfer.json"


def timed_curve(landscape, task, agent, seed: int, budget: int) -> list[float]:
    """Best found / optimum within each time budget (``BUDGETS`` x the landscape's median recorded measurement)."""
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        records = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=run_dir / "cache",
                           out=None, plot=False).records
    recorded = [record["duration_s"] for record in _recording(landscape) if is_number(record.get("duration_s"))]
    unit = percentile(sorted(recorded), 0.5) if recorded else 1.0
    curve, spent, best = [], 0.0, 0.0
    timeline = []
    for record in records:
        spent += float(record.info.get("recorded_duration_s") or 0.0)
        if rankable(record):
            best = max(best, landscape.quality(config_tuple(record.config)))
        timeline.append((spent, best))
    for allowance in BUDGETS:
        within = [quality for at, quality in timeline if at <= allowance * unit]
        curve.append(within[-1] if within else 0.0)
    return curve


def _recording(landscape) -> list[dict]:
    lines = Path(landscape.source).with_suffix(".jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def coordinate_figures(landscapes: list, seeds: int, cost_aware: bool = True) -> dict:
    """Best found / optimum per budget and measurements to 95%, over (landscape, seed); per landscape at 8; and
    best found / optimum per time budget."""
    curves: dict[str, list[list[float]]] = {}
    timed: list[list[float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for landscape in landscapes:
            task = replay_task(landscape, Path(scratch) / landscape.name)
            curves[landscape.name] = [run_agent(landscape, task, CoordinateAgent(cost_aware), max(BUDGETS), seed)
                                      for seed in range(seeds)]
            timed += [timed_curve(landscape, task, CoordinateAgent(cost_aware), seed, 4 * max(BUDGETS))
                      for seed in range(seeds)]
    every = [curve for group in curves.values() for curve in group]
    reached = [measurements_to_target(curve) for curve in every]
    return {"best_over_optimum": {str(budget): mean_ci([curve[budget - 1] for curve in every]) for budget in BUDGETS},
            "to95": mean_ci([hit if hit is not None else max(BUDGETS) + 1 for hit in reached]),
            "reached": [sum(hit is not None for hit in reached), len(reached)],
            "per_landscape": {name: sum(curve[7] for curve in group) / len(group) for name, group in curves.items()},
            "best_over_optimum_by_time": {str(budget): mean_ci([curve[index] for curve in timed])
                                          for index, budget in enumerate(BUDGETS)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "searchers.json")
    args = parser.parse_args()
    library = coordinate_figures(load_library(), args.seeds)
    plain = coordinate_figures(load_library(), args.seeds, cost_aware=False)
    elsewhere = coordinate_figures([load_landscape(path) for path in sorted((ROOT / "benchmarks" / "landscapes")
                                                                             .glob("*.yaml"))
                                    if path.with_suffix(".jsonl").is_file()], args.seeds)
    others = json.loads(OTHERS.read_text())["agents"] if OTHERS.is_file() else {}
    rows = {"coordinate": library, "coordinate-plain": plain, **others}
    print(f"{'agent':<24}" + "".join(f"{f'budget {budget}':>16}" for budget in BUDGETS) + f"{'to 95%':>14}")
    for name, row in rows.items():
        figures = [row["best_over_optimum"][str(budget)] for budget in BUDGETS]
        cells = "".join(f"{mean:>9.3f} ±{half:.3f}" for mean, half in figures)
        print(f"{name:<24}{cells}{row['to95'][0]:>8.1f} ±{row['to95'][1]:.1f}")
    print("against the clock (time worth N median measurements of the landscape, recorded durations):")
    for name in ("coordinate", "coordinate-plain"):
        cells = "".join(f"{mean:>9.3f} ±{half:.3f}" for mean, half in
                        (rows[name]["best_over_optimum_by_time"][str(budget)] for budget in BUDGETS))
        print(f"{name:<24}{cells}")
    print("coordinate search on benchmarks/landscapes (no agent trained on them): "
          + ", ".join(f"{name} {value:.3f} at budget 8" for name, value in elsewhere["per_landscape"].items()))
    args.out.write_text(json.dumps({"what": "coordinate search by replay, from the space's default config (plain: "
                                            "without cost awareness), by measurements and by recorded time; the "
                                            "other agents from benchmarks/transfer.py (leave one landscape out)",
                                    "command": "python benchmarks/searchers.py", "seeds": args.seeds,
                                    "library": rows, "benchmark_landscapes": elsewhere}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
