"""Benchmark: measurements each agent needs to reach 95% of the best known config, on the replay landscape.

Budgets 16 and 32, 10 seeds each (issue #3). Target: Optuna needs at most a quarter of the measurements
random search needs, on average. Also saves PPO's learning curve (reward per step, averaged over seeds).

    python benchmarks/agents.py [--env envs/smollm2-cpu-replay.yaml] [--seeds 10] [--budgets 16,32]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tuner.agents import make_agent
from tuner.records import read_records
from tuner.results.comparison import compare_table
from tuner.results.plots import curves_plot
from tuner.run.compare import run_compare
from tuner.task import load_task


def ppo_learning_curve(out_dir: Path, seeds: range, budget: int) -> list[list[float]]:
    """Reward (objective) of each PPO step, per seed, read back from the runs' records."""
    curves = []
    for seed in seeds:
        records = read_records(out_dir / f"ppo-seed{seed}" / "records.jsonl")
        curves.append([record.objective for record in records][: budget * 2])
    width = min(len(curve) for curve in curves)
    return [curve[:width] for curve in curves]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="envs/smollm2-cpu-replay.yaml")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="16,32")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()

    task = load_task(args.env)
    root = Path(args.runs_dir) / "benchmarks" / f"agents-{time.strftime('%Y%m%d-%H%M%S')}"
    results = {}
    for budget in (int(value) for value in args.budgets.split(",")):
        out_dir = root / f"budget{budget}"
        report = run_compare(task, [lambda name=name: make_agent(name, policy="none")
                                    for name in ("ppo", "optuna", "random")],
                             budget=budget, seeds=range(args.seeds), out_dir=out_dir, progress=lambda _line: None)
        rows = {row["agent"]: row for row in report["agents"]}
        ratio = rows["optuna"]["to95_mean"] / rows["random"]["to95_mean"]
        print(f"\nbudget {budget}, {args.seeds} seeds, best known {report['metric']} {report['best_known']:.1f}")
        print(compare_table(report))
        print(f"optuna / random measurements-to-95%: {ratio:.2f} (target <= 0.25)")
        ppo = ppo_learning_curve(out_dir, range(args.seeds), budget)
        curves_plot({"ppo reward per step": ppo}, out_dir / "ppo_learning_curve.png",
                    f"PPO reward per step (budget {budget})", "reward (objective)", xlabel="step (trial)")
        results[budget] = {"report": report, "optuna_over_random": ratio, "ppo_learning_curve": ppo}
    (root / "agents.json").write_text(json.dumps(results, indent=2))
    print(f"\nsaved {root}/agents.json and the PNGs beside it")


if __name__ == "__main__":
    main()
