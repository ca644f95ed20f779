"""Benchmark: does a policy pretrained on other landscapes tune a new one in fewer measurements?

Leave-one-landscape-out over the library (envs/recordings/library): for each landscape L, a policy is
pretrained on every other landscape (never on L), then random search, Optuna (TPE), Optuna warm-started
from the other landscapes, PPO learning from scratch and the pretrained PPO (acting only, and learning on L
as it goes) each tune L by replay, at
budgets 4, 8, 12 and 16, over many seeds. Reported, with 95% confidence intervals over (landscape, seed):
best found / optimum at each budget, and measurements to reach 95% of the optimum (at the largest budget; a
run that never reaches it counts as budget + 1, a lower bound). Also the time to pretrain and to propose.

    python benchmarks/transfer.py [--seeds 20] [--budgets 4,8,12,16] [--timesteps 200000] [--out DIR]
                                  [--augment SHARE] [--mirror-batch SHARE] [--pretrain-seed N] [--only NAME,...]
                                  [--workdir DIR]

``--augment``, ``--mirror-batch`` and ``--pretrain-seed`` are the pretraining's (``infertune pretrain``); the
shares default to 0 here. A policy's quality varies between pretraining seeds (and machines: PPO's 200,000
steps amplify float differences), so compare settings over several ``--pretrain-seed``.

Finished runs are appended to <out>/runs.jsonl and skipped when the same command runs again (resumable);
``--only`` runs some folds (one process per core, then once without it for the summary). Random search and
Optuna never read the budget (random's order is seeded; TPE starts with 3 random trials at every budget
below 48), so each of their runs is made once, at the largest budget, and the smaller budgets are its prefixes
(tests/unit/learning/test_pretrain.py checks that a run at a smaller budget equals the prefix). The PPO agents see the
budget left, and the warm start enqueues half the budget: they run at every budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tuner.agents.optuna_search import OptunaAgent
from tuner.agents.policy_file import load_policy, save_policy
from tuner.agents.ppo_search import PPOAgent
from tuner.agents.pretrained_ppo import PretrainedPPOAgent, propose
from tuner.agents.random_search import RandomAgent
from tuner.env.history import SessionHistory
from tuner.learning.pretrain import pretrain
from tuner.learning.transfer import folds, mean_ci, measurements_to_target, replay_task, run_agent
from tuner.library.catalog import LIBRARY, load_library
from tuner.results.plots import transfer_plot

AGENTS = ("random", "optuna", "optuna-warm", "ppo-scratch", "ppo-pretrained", "ppo-pretrained-learning")
BUDGET_BLIND = ("random", "optuna")  # their proposals do not depend on the budget: one run serves every budget
SHARED_MEMORY = Path("/dev/shm")  # run folders there: a record's fsync costs nothing, the agents' work is timed


def make(agent: str, fold, policy: Path):
    """The agent under test for one fold (only the warm start and the policy see the other landscapes)."""
    if agent == "random":
        return RandomAgent()
    if agent == "optuna":
        return OptunaAgent()
    if agent == "optuna-warm":
        return OptunaAgent(warm_start=fold.training)
    if agent == "ppo-scratch":
        return PPOAgent()
    return PretrainedPPOAgent(policy, learn_online=agent == "ppo-pretrained-learning")


def proposal_seconds(policy_path: Path, fold) -> float:
    """Mean wall time of one proposal by the pretrained policy (observation, sampling, checks)."""
    import numpy as np

    policy = load_policy(policy_path)
    landscape = fold.heldout
    history = SessionHistory(policy.codec.bind(landscape.values), landscape.features, 16)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(16):
        config = propose(policy, history, landscape.configs, rng)
        if config is None:
            break
        outcome = landscape.outcomes[config]
        history.add(config, outcome.score, outcome.rankable)
    return (time.perf_counter() - started) / max(1, history.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", default=str(LIBRARY))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", default="4,8,12,16")
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--augment", type=float, default=0.0)
    parser.add_argument("--mirror-batch", type=float, default=0.0)
    parser.add_argument("--pretrain-seed", type=int, default=0)
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--out", default="runs/benchmarks/transfer")
    parser.add_argument("--only", default="", help="comma-separated held-out landscapes to run (default: all)")
    parser.add_argument("--workdir", default=str(SHARED_MEMORY) if SHARED_MEMORY.is_dir() else None,
                        help="where the runs' scratch folders go (default: /dev/shm when there is one)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the policies are tiny MLPs: one thread, so folds run side by side (--only) unhindered
    budgets = sorted(int(value) for value in args.budgets.split(","))
    agents = [name for name in args.agents.split(",") if name]
    only = {name for name in args.only.split(",") if name}
    workdir = Path(args.workdir) if args.workdir else None
    out = Path(args.out)
    (out / "policies").mkdir(parents=True, exist_ok=True)
    done_path = out / "runs.jsonl"
    # a run belongs to these pretraining settings (runs made before --mirror-batch and --pretrain-seed had 0)
    setting = {"timesteps": args.timesteps, "augment": args.augment, "mirror_batch": args.mirror_batch,
               "pretrain_seed": args.pretrain_seed}
    done = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.is_file() else []
    done = [row for row in done if {"mirror_batch": 0.0, "pretrain_seed": 0, **row.get("setting", {})} == setting]
    finished = {(row["landscape"], row["agent"], row["budget"], row["seed"]) for row in done}
    library = load_library(Path(args.library))
    if len(library) < 2:
        raise SystemExit(f"{args.library}: leave-one-out needs at least 2 landscapes, found {len(library)}")
    unknown = only - {landscape.name for landscape in library}
    if unknown:
        raise SystemExit(f"--only: no landscape named {', '.join(sorted(unknown))} in {args.library}")
    timings: dict[str, dict[str, float]] = {}
    for fold in folds(library):
        name = fold.heldout.name
        if only and name not in only:
            continue
        mirrored = f"-m{args.mirror_batch:g}" if args.mirror_batch else ""
        seeded = f"-s{args.pretrain_seed}" if args.pretrain_seed else ""
        policy_path = out / "policies" / f"without-{name}-t{args.timesteps}-a{args.augment:g}{mirrored}{seeded}.zip"
        if any(agent.startswith("ppo-pretrained") for agent in agents):  # only they need the fold's policy
            if not policy_path.is_file():
                policy, _ = pretrain(fold.training, timesteps=args.timesteps, seed=args.pretrain_seed,
                                     augment=args.augment,
                                     mirror_batch=args.mirror_batch)
                assert name not in policy.meta["trained_on"]
                save_policy(policy, policy_path)
            meta = json.loads(policy_path.with_suffix(".json").read_text())
            if sorted(meta["trained_on"]) != sorted(landscape.name for landscape in fold.training):
                raise SystemExit(f"{policy_path} was trained on another library: remove it or use another --out")
            timings[name] = {"pretrain_s": meta["seconds"], "propose_s": proposal_seconds(policy_path, fold)}
        task = replay_task(fold.heldout, out / "tasks")
        for agent in agents:
            # a budget-blind agent runs the largest budget only: the smaller ones are its prefixes
            for budget in (budgets[-1:] if agent in BUDGET_BLIND else budgets):
                for seed in range(args.seeds):
                    if (name, agent, budget, seed) in finished:
                        continue
                    started = time.perf_counter()
                    curve = run_agent(fold.heldout, task, make(agent, fold, policy_path), budget, seed, workdir)
                    row = {"landscape": name, "agent": agent, "budget": budget, "seed": seed, "curve": curve,
                           "seconds": time.perf_counter() - started, "setting": setting}
                    rows = [row]
                    if agent in BUDGET_BLIND:
                        rows += [{**row, "budget": smaller, "curve": curve[:smaller], "seconds": None,
                                  "prefix_of": budget}
                                 for smaller in budgets[:-1] if (name, agent, smaller, seed) not in finished]
                    with open(done_path, "a") as handle:
                        handle.write("".join(json.dumps(each) + "\n" for each in rows))
                    done.extend(rows)
            for budget in budgets:
                finals = [row["curve"][-1] for row in done
                          if (row["landscape"], row["agent"], row["budget"]) == (name, agent, budget)]
                print(f"{name}: {agent} budget {budget}: mean best/optimum {mean_ci(finals)[0]:.3f}", flush=True)
    summary = summarize(done, agents, budgets, [fold.heldout.name for fold in folds(library)])
    summary["timings"] = timings
    (out / "transfer.json").write_text(json.dumps(summary, indent=1))
    transfer_plot(summary, out / "transfer.png")
    print(markdown_table(summary))
    print(f"\nsaved {out}/transfer.json, transfer.png, runs.jsonl")


def summarize(rows: list[dict], agents: list[str], budgets: list[int], landscapes: list[str]) -> dict:
    """Per agent and budget: best/optimum with its CI; measurements to 95% at the largest budget; worst landscape."""
    largest = max(budgets)
    middle = 8 if 8 in budgets else largest  # the per-landscape view (worst held-out landscape) at budget 8
    table: dict[str, dict] = {}
    for agent in agents:
        entry: dict = {"best_over_optimum": {}, "per_landscape": {}, "per_landscape_budget": middle}
        for budget in budgets:
            finals = [row["curve"][-1] for row in rows if row["agent"] == agent and row["budget"] == budget
                      and row["landscape"] in landscapes]
            entry["best_over_optimum"][budget] = mean_ci(finals)
        hits = [measurements_to_target(row["curve"]) for row in rows
                if row["agent"] == agent and row["budget"] == largest and row["landscape"] in landscapes]
        counted = [hit if hit is not None else largest + 1 for hit in hits]
        entry["to95"] = mean_ci(counted)
        entry["reached"] = [sum(hit is not None for hit in hits), len(hits)]
        for landscape in landscapes:
            finals = [row["curve"][-1] for row in rows if (row["agent"], row["landscape"]) == (agent, landscape)
                      and row["budget"] == middle]
            entry["per_landscape"][landscape] = mean_ci(finals)[0]
        table[agent] = entry
    return {"agents": table, "budgets": budgets, "landscapes": landscapes}


def markdown_table(summary: dict) -> str:
    """The README's table."""
    budgets = summary["budgets"]
    head = "| agent | " + " | ".join(f"best/optimum @ {budget}" for budget in budgets) + \
        f" | measurements to 95% (budget {max(budgets)}) |"
    lines = [head, "|---" * (len(budgets) + 2) + "|"]
    for agent, entry in summary["agents"].items():
        cells = [f"{entry['best_over_optimum'][budget][0]:.3f} ± {entry['best_over_optimum'][budget][1]:.3f}"
                 for budget in budgets]
        reached, runs = entry["reached"]
        cells.append(f"{entry['to95'][0]:.1f} ± {entry['to95'][1]:.1f} ({reached}/{runs} reached)")
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
