"""Learning to tune: the landscape env, pretraining, the pretrained agent, warm starts (design §14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from tests.unit.learning.landscapes import CPU, GPU, PLANTED_CPU, PLANTED_GPU, planted, planted_rows, write_landscape
from tuner.agents.policy_file import save_policy
from tuner.agents.pretrained_ppo import PretrainedPPOAgent
from tuner.env.canonical import CanonicalCodec, canonical_values
from tuner.env.landscape_env import LandscapeEnv
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession
from tuner.learning.pretrain import pretrain
from tuner.library.catalog import load_library
from tuner.library.landscape import KNOBS, landscape_from_records
from tuner.objective import ObjectiveSpec
from tuner.task import load_task

CPU_LANDSCAPE = planted("planted-cpu", PLANTED_CPU, CPU)
GPU_LANDSCAPE = planted("planted-gpu", PLANTED_GPU, GPU)


def _codec() -> CanonicalCodec:
    return CanonicalCodec(canonical_values([CPU_LANDSCAPE.values]))


def test_the_landscape_env_passes_the_checker_and_scores_the_final_best():
    env = LandscapeEnv([CPU_LANDSCAPE], _codec(), budgets=(4,))
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    optimum = env.history.codec.encode(tuple(PLANTED_CPU[knob] for knob in KNOBS))
    _, reward, done, _, info = env.step(optimum)
    assert reward == pytest.approx(1.0) and info["quality"] == pytest.approx(1.0) and not done
    _, reward, _, _, info = env.step(optimum)  # a repeat spends a step and gains nothing
    assert reward == 0.0 and info["repeated"]


def test_a_batch_mirrored_copy_puts_the_best_batch_at_the_other_end_and_keeps_the_rest():
    from tuner.library.augment import batch_mirrored, perturbed

    sizes = CPU_LANDSCAPE.values["batch_size"]
    assert PLANTED_CPU["batch_size"] == sizes[-1]  # planted at the largest batch
    mirrored = batch_mirrored(CPU_LANDSCAPE)
    assert mirrored.optimum == tuple({**PLANTED_CPU, "batch_size": sizes[0]}[knob] for knob in KNOBS)
    assert mirrored.optimum_score == CPU_LANDSCAPE.optimum_score and len(mirrored.outcomes) == len(sizes) * (
        len(CPU_LANDSCAPE.outcomes) // len(sizes))
    assert mirrored.features == CPU_LANDSCAPE.features and mirrored.values == CPU_LANDSCAPE.values
    rng = np.random.default_rng(0)
    optima = {perturbed(CPU_LANDSCAPE, rng, mirror_batch=0.5).optimum[0] for _ in range(40)}
    assert optima == {sizes[0], sizes[-1]}  # about half the perturbed copies are mirrored
    assert {perturbed(CPU_LANDSCAPE, rng).optimum[0] for _ in range(20)} == {sizes[-1]}


@pytest.fixture(scope="module")
def trained():
    policy, curve = pretrain([CPU_LANDSCAPE, GPU_LANDSCAPE], timesteps=24_576, seed=0, n_envs=8)
    return policy, curve


def _episodes(policy, landscape, budget: int, episodes: int, seed: int = 0) -> tuple[list[float], set[tuple]]:
    env = LandscapeEnv([landscape], policy.codec, budgets=(budget,))
    finals, proposed = [], set()
    observation, _ = env.reset(seed=seed)
    policy.model.set_random_seed(seed)
    while len(finals) < episodes:
        action, _ = policy.model.predict(observation, action_masks=env.action_masks(), deterministic=False)
        proposed.add(env.history.codec.decode(action))
        observation, _, done, _, info = env.step(action)
        if done:
            finals.append(info["quality"])
            observation, _ = env.reset()
    return finals, proposed


def test_pretraining_finds_the_planted_optima_of_both_landscapes(trained):
    policy, curve = trained
    assert curve[-1][1] > curve[0][1] + 0.2  # it learned
    for landscape in (CPU_LANDSCAPE, GPU_LANDSCAPE):
        finals, _ = _episodes(policy, landscape, budget=4, episodes=40)
        assert np.mean(finals) >= 0.9, landscape.name  # random search with 4 of 108 configs: about 0.5
    random_finals = []
    rng = np.random.default_rng(0)
    for _ in range(200):
        picks = rng.choice(len(CPU_LANDSCAPE.configs), size=4, replace=False)
        random_finals.append(max(CPU_LANDSCAPE.quality(CPU_LANDSCAPE.configs[index]) for index in picks))
    assert np.mean(random_finals) < 0.7


def test_the_policy_never_proposes_a_masked_value(trained):
    policy, _ = trained
    narrow = planted("narrow", {**PLANTED_CPU, "batch_size": 4}, CPU)
    narrow.outcomes = {key: outcome for key, outcome in narrow.outcomes.items() if key[0] == 4 and key[6] == 1}
    narrow.values = {}
    narrow.__post_init__()  # recompute the values it holds: batch 4 and one shard only
    _, proposed = _episodes(policy, narrow, budget=8, episodes=50)
    assert {config[0] for config in proposed} == {4} and {config[6] for config in proposed} == {1}


def test_the_policy_names_batch_sizes_by_rank_so_a_larger_batch_than_any_it_trained_on_is_reachable(trained):
    # An H100 task offers batch 128; the training landscapes offered at most 16. Trained on a CPU landscape whose
    # best batch is its largest, the policy proposes the new task's largest batch, which it never saw.
    policy, _ = trained
    as_h100 = {1: 1, 4: 8, 16: 128}
    rows = planted_rows("h100-like", PLANTED_CPU, CPU)
    for row in rows:
        row["config"]["batch_size"] = as_h100[row["config"]["batch_size"]]
        misses = sum(row["config"][knob] != PLANTED_CPU[knob] for knob in KNOBS if knob != "batch_size")
        row["metrics"]["tokens_per_s"] = 1000.0 / 1.6 ** (misses + (row["config"]["batch_size"] != 128))
    big_batches = landscape_from_records("h100-like", rows, ObjectiveSpec())
    assert 128 not in policy.codec.values["batch_size"]
    finals, proposed = _episodes(policy, big_batches, budget=4, episodes=40)
    assert np.mean(finals) >= 0.9 and 128 in {config[0] for config in proposed}


def test_a_pretrained_agent_replays_deterministically_for_a_seed(tmp_path, trained):
    policy, _ = trained
    save_policy(policy, tmp_path / "policy.zip")
    replay = load_task(write_landscape(tmp_path / "library", "planted-cpu", PLANTED_CPU, CPU))

    def proposals(seed: int) -> list[dict]:
        with Evaluator(replay, tmp_path / f"run-{seed}-{len(list(tmp_path.iterdir()))}",
                       cache_dir=tmp_path / f"cache-{seed}-{len(list(tmp_path.iterdir()))}") as evaluator:
            session = TuningSession(evaluator, 6)
            PretrainedPPOAgent(tmp_path / "policy.zip").search(session, seed=seed)
            return [record.config for record in session.records]

    first, again, other = proposals(1), proposals(1), proposals(2)
    assert first == again and len(first) == 6
    assert len({tuple(config.values()) for config in first}) == 6  # never the same config twice
    assert first != other


def test_a_pretrained_policy_learning_online_updates_on_the_task_within_its_space(tmp_path, trained):
    policy, _ = trained
    save_policy(policy, tmp_path / "policy.zip")
    replay = load_task(write_landscape(tmp_path / "library", "planted-gpu", PLANTED_GPU, GPU))
    agent = PretrainedPPOAgent(tmp_path / "policy.zip", learn_online=True)
    with Evaluator(replay, tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = TuningSession(evaluator, 9)
        agent.search(session, seed=0)
    assert session.spent == 9 and agent.updates >= 2  # an update every 4 steps (a step may name no new config)
    configs = [record.config for record in session.records]
    assert len({tuple(config.values()) for config in configs}) == len(configs)  # nothing measured twice
    assert all(replay.space.violations(config) == [] for config in configs)


def test_optuna_warm_start_tries_the_nearest_landscapes_best_first(tmp_path):
    from tuner.agents.optuna_search import OptunaAgent

    folder = tmp_path / "library"
    write_landscape(folder, "planted-gpu", PLANTED_GPU, GPU)
    replay = load_task(write_landscape(folder, "planted-cpu", PLANTED_CPU, CPU))
    library = [landscape for landscape in load_library(folder) if landscape.name != "planted-cpu"]
    near = planted("near-cpu", {**PLANTED_CPU, "batch_size": 4}, CPU)  # the CPU twin: nearest by features
    with Evaluator(replay, tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = TuningSession(evaluator, 4)  # up to half the budget is warm-started
        OptunaAgent(warm_start=[*library, near]).search(session, seed=0)
    first, second = session.records[0].config, session.records[1].config
    assert first == {**PLANTED_CPU, "batch_size": 4}  # the nearest landscape's optimum
    assert second == PLANTED_GPU  # then the next nearest's


@pytest.mark.parametrize("agent", ["random", "optuna"])
def test_budget_blind_agents_propose_the_same_configs_at_every_budget(tmp_path, agent):
    # benchmarks/transfer.py runs these agents once, at the largest budget, and reads the smaller budgets
    # as its prefixes: true only while neither reads the budget
    from tuner.agents import make_agent

    replay = load_task(write_landscape(tmp_path / "library", "planted-cpu", PLANTED_CPU, CPU))
    proposed = {}
    for budget in (4, 12):
        with Evaluator(replay, tmp_path / f"run{budget}", cache_dir=tmp_path / f"cache{budget}") as evaluator:
            session = TuningSession(evaluator, budget)
            make_agent(agent).search(session, seed=3)
            assert session.spent == budget
        proposed[budget] = [record.config for record in session.records]  # rejected configs (free) included
    assert len(proposed[4]) >= 4 and proposed[12][:len(proposed[4])] == proposed[4]


def test_holding_out_a_landscape_that_is_not_there_is_refused(tmp_path):
    from tuner.util.errors import ConfigError

    write_landscape(tmp_path / "library", "planted-cpu", PLANTED_CPU, CPU)
    with pytest.raises(ConfigError, match="--holdout"):
        load_library(tmp_path / "library", ["planted-cpu-typo"])
    with pytest.raises(ConfigError, match="no landscape left"):
        load_library(tmp_path / "library", ["planted-cpu"])
    assert [landscape.name for landscape in load_library(tmp_path / "library")] == ["planted-cpu"]


def test_pretrain_command_saves_a_policy_its_curve_and_logs_to_mlflow(tmp_path):
    import json
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    from tests.helpers import ROOT

    library = tmp_path / "library"
    write_landscape(library, "planted-cpu", PLANTED_CPU, CPU)
    write_landscape(library, "planted-gpu", PLANTED_GPU, GPU)
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "pretrain", "--library", str(library),
               "--holdout", "planted-gpu", "--timesteps", "2048", "--out", str(tmp_path / "p.zip"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((tmp_path / "p.json").read_text())
    assert meta["trained_on"] == ["planted-cpu"] and (tmp_path / "p.zip").is_file()
    assert (meta["augment"], meta["mirror_batch"]) == (0.0, 0.0)  # the default policy's settings
    assert (tmp_path / "p-learning.png").stat().st_size > 0
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("infertune-pretrain")
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "episode_best_quality")
    assert len(history) >= 2 and all(0.0 <= point.value <= 1.0 for point in history)
    typo = subprocess.run([*command[:5], "pretrain", "--library", str(library), "--holdout", "nope"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1 and "--holdout" in typo.stderr
    share = subprocess.run([*command[:5], "pretrain", "--library", str(library), "--mirror-batch", "1.5"],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert share.returncode == 2 and len(share.stderr.strip().splitlines()) == 1
    assert "--mirror-batch" in share.stderr and "1.5" in share.stderr


def test_the_transfer_benchmark_never_trains_on_the_landscape_it_holds_out(tmp_path):
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    library = tmp_path / "library"
    write_landscape(library, "planted-cpu", PLANTED_CPU, CPU)
    write_landscape(library, "planted-gpu", PLANTED_GPU, GPU)
    write_landscape(library, "planted-cpu-b4", {**PLANTED_CPU, "batch_size": 4}, CPU)
    out = tmp_path / "bench"
    result = subprocess.run([sys.executable, "benchmarks/transfer.py", "--library", str(library), "--seeds", "2",
                             "--budgets", "4", "--timesteps", "1024", "--agents", "random,optuna-warm,ppo-pretrained",
                             "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for heldout in ("planted-cpu", "planted-gpu", "planted-cpu-b4"):
        trained_on = json.loads((out / "policies" / f"without-{heldout}-t1024-a0.json").read_text())["trained_on"]
        assert heldout not in trained_on and len(trained_on) == 2
    summary = json.loads((out / "transfer.json").read_text())
    assert set(summary["agents"]) == {"random", "optuna-warm", "ppo-pretrained"}
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 3 * 2 and all(len(row["curve"]) == 4 for row in rows)
    # warm-started from its CPU twin, Optuna finds planted-cpu's optimum region at once
    warm = [row["curve"][0] for row in rows if row["agent"] == "optuna-warm" and row["landscape"] == "planted-cpu"]
    assert min(warm) >= 1 / 1.6 - 1e-9
    assert (out / "transfer.png").stat().st_size > 0 and "| ppo-pretrained |" in result.stdout


def test_tune_with_a_pretrained_policy_from_the_command_line(tmp_path, trained):
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT

    policy, _ = trained
    save_policy(policy, tmp_path / "policy.zip")
    replay = write_landscape(tmp_path / "library", "planted-cpu", PLANTED_CPU, CPU)
    base = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs"), "tune", str(replay), "--agent",
            "ppo", "--policy", str(tmp_path / "policy.zip"), "--budget", "5", "--no-mlflow"]
    result = subprocess.run([*base, "--run", "r"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    assert summary["measurements"] == 5 and summary["best"]["config"] == PLANTED_CPU  # learned: found at once
    assert summary["agent"]["pretrained_on"] == ["planted-cpu", "planted-gpu"]
    parallel = subprocess.run([*base, "--run", "p", "--envs", "2"], capture_output=True, text=True, cwd=ROOT)
    assert parallel.returncode == 2 and "--envs" in parallel.stderr and "Traceback" not in parallel.stderr


def test_a_value_recorded_only_as_infeasible_is_masked_as_a_live_run_masks_it(tmp_path):
    # On one GPU every shard_count 2 config is infeasible: the live worker masks the value, so replay (every agent's
    # allowed values) and pretraining (the landscape's values) must too, or they spend budget a live run never would.
    rows = planted_rows("one-gpu", PLANTED_GPU, GPU)
    for row in rows:
        if row["config"]["shard_count"] == 2:
            row.update(status="infeasible", metrics={}, feasible=False)
    assert landscape_from_records("one-gpu", rows, ObjectiveSpec()).values["shard_count"] == [1]
    (tmp_path / "one-gpu.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "replay.yaml").write_text("id: one-gpu-replay\nbackend: replay\nrecording: one-gpu.jsonl\n"
                                          "search_space: library\nobjective: {maximize: tokens_per_s}\nbudget: 8\n")
    with Evaluator(load_task(tmp_path / "replay.yaml"), tmp_path / "run", use_cache=False) as evaluator:
        allowed = evaluator.runnable_values()
    assert allowed["shard_count"] == [1] and allowed["batch_size"] == [1, 4, 16]
