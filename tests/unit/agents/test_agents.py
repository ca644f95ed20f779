"""Agents share one budget: each stops exactly at it, cached configs are free, Optuna sees constraints."""

from __future__ import annotations

import optuna
import pytest

from tuner.agents import make_agent
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession, rankable
from tuner.util.errors import UserError


def _session(task, run_dir, budget, cache_dir=None):
    evaluator = Evaluator(task, run_dir, agent="test", cache_dir=cache_dir)
    return evaluator, TuningSession(evaluator, budget)


@pytest.mark.parametrize("name", ["random", "optuna", "ppo", "coordinate"])
def test_agent_stops_exactly_at_budget(tmp_path, replay_task, name):
    evaluator, session = _session(replay_task, tmp_path / "run", budget=10, cache_dir=tmp_path / "cache")
    make_agent(name).search(session, seed=1)
    evaluator.close()
    assert session.spent == 10 and evaluator.measurements == 10
    measured = [record for record in session.records if not record.cached
                and (record.error or {}).get("type") != "ConstraintViolated"]
    assert len(measured) == 10
    assert session.best is not None and rankable(session.best)
    assert session.best.objective == max(record.objective for record in session.records if rankable(record))


@pytest.mark.parametrize("name", ["random", "optuna", "ppo", "coordinate"])
def test_cached_configs_do_not_count(tmp_path, replay_task, name):
    cache = tmp_path / "cache"
    warm_evaluator, warm = _session(replay_task, tmp_path / "warm", budget=30, cache_dir=cache)
    make_agent("random").search(warm, seed=5)  # 30 configs now cached
    warm_evaluator.close()
    evaluator, session = _session(replay_task, tmp_path / "run", budget=6, cache_dir=cache)
    make_agent(name).search(session, seed=5)
    evaluator.close()
    cached = [record for record in session.records if record.cached]
    assert session.spent == 6 and cached
    assert len(session.records) >= 6 + len(cached)


def test_ppo_saves_a_policy_that_loads(tmp_path, replay_task):
    evaluator, session = _session(replay_task, tmp_path / "run", budget=8, cache_dir=tmp_path / "c1")
    first = make_agent("ppo", policy="none")  # PPO learning on the task saves its policy
    first.search(session, seed=0)
    evaluator.close()
    assert first.saved == tmp_path / "run" / "policy.zip" and first.saved.is_file()
    evaluator, session = _session(replay_task, tmp_path / "again", budget=8, cache_dir=tmp_path / "c2")
    make_agent("ppo", policy=str(first.saved)).search(session, seed=0)
    evaluator.close()
    assert session.spent == 8


def test_optuna_reports_failures_as_constraint_violations(tmp_path, replay_task):
    # a quarter of the replay space breaks its constraint (int8-dynamic needs float32): told as violations
    evaluator, session = _session(replay_task, tmp_path / "run", budget=12, cache_dir=tmp_path / "cache")
    agent = make_agent("optuna", storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="joint")
    agent.search(session, seed=3)
    evaluator.close()
    study = optuna.load_study(study_name="joint", storage=f"sqlite:///{tmp_path / 'study.db'}")
    by_trial = {record.trial: record for record in session.records}
    # a repeated proposal is a study trial (marked repeat) but no new record: it answers from the earlier one
    assert len(study.trials) == len(session.records) + session.repeats
    assert {trial.user_attrs["record_trial"] for trial in study.trials} == set(by_trial)
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    for trial in study.trials:
        record = by_trial[trial.user_attrs["record_trial"]]
        assert (trial.constraints["feasible"] <= 0) == record.feasible
        assert trial.value == pytest.approx(record.objective)
    assert any(not record.feasible for record in session.records)


def test_optuna_joins_an_existing_study_whose_budget_is_shared(tmp_path, replay_task):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    measured = []
    for worker, budget in enumerate((4, 8, 8)):  # a shared study's budget counts every worker's trials
        evaluator, session = _session(replay_task, tmp_path / f"w{worker}", budget=budget,
                                      cache_dir=tmp_path / f"c{worker}")
        make_agent("optuna", storage=storage, study_name="team").search(session, seed=worker)
        evaluator.close()
        measured.append(session.proposals)
    study = optuna.load_study(study_name="team", storage=storage)
    assert measured == [4, 4, 0] and len(study.trials) == 8
    assert {trial.user_attrs["run"] for trial in study.trials} == {"w0", "w1"}


def test_optuna_pareto_mode(tmp_path, replay_task):
    evaluator, session = _session(replay_task, tmp_path / "run", budget=8, cache_dir=tmp_path / "cache")
    agent = make_agent("optuna", pareto=True)
    agent.search(session, seed=0)
    evaluator.close()
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{(tmp_path / 'optuna.db').resolve()}")
    assert len(study.directions) == 3 and study.best_trials


@pytest.mark.parametrize("sampler", ["gp", "nsga2", "cmaes", "random"])
def test_other_samplers_spend_the_budget(tmp_path, replay_task, sampler):
    evaluator, session = _session(replay_task, tmp_path / "run", budget=5, cache_dir=tmp_path / "cache")
    make_agent("optuna", sampler=sampler).search(session, seed=0)
    evaluator.close()
    assert session.spent == 5


def test_unknown_agent_and_sampler():
    with pytest.raises(UserError, match="--agent: unknown agent"):
        make_agent("genetic")
    with pytest.raises(UserError, match="--sampler: unknown sampler"):
        make_agent("optuna", sampler="bohb")


def test_optuna_params_are_values_that_mean_the_same_on_every_machine(replay_task):
    from optuna.distributions import check_distribution_compatibility

    from tuner.agents.optuna_search import SpaceEncoding

    space = replay_task.space
    declared = list(space.knob("batch_size").choices)
    assert declared == [1, 4, 8, 16]
    big = SpaceEncoding(space, {"batch_size": declared})
    small = SpaceEncoding(space, {"batch_size": [1, 4]})  # another worker of the study runs fewer sizes
    big_batch, small_batch = big.distributions()["batch_size"], small.distributions()["batch_size"]
    check_distribution_compatibility(big_batch, small_batch)  # one study can hold both workers' trials
    assert big_batch == small_batch and (big_batch.low, big_batch.high, big_batch.log) == (1, 16, True)
    assert big.config({"batch_size": 4})["batch_size"] == small.config({"batch_size": 4})["batch_size"] == 4
    assert big.config({"batch_size": 6})["batch_size"] == 8 and small.config({"batch_size": 6})["batch_size"] == 4
    assert big.config({"batch_size": 3})["batch_size"] == 4 and small.config({"batch_size": 2})["batch_size"] == 1


def test_optuna_tells_how_far_a_config_is_from_feasible(tmp_path, replay_task):
    evaluator, session = _session(replay_task, tmp_path / "run", budget=24, cache_dir=tmp_path / "cache")
    make_agent("optuna").search(session, seed=3)
    evaluator.close()
    study = optuna.load_study(study_name="run", storage=f"sqlite:///{(tmp_path / 'optuna.db').resolve()}")
    told = {trial.user_attrs["record_trial"]: trial.system_attrs["constraints:feasible"] for trial in study.trials}
    by_trial = {record.trial: record for record in session.records}
    for trial, value in told.items():
        record = by_trial[trial]
        assert (value <= 0) == record.feasible
    measured_misses = sorted({round(value, 6) for trial, value in told.items()
                              if value > 0 and by_trial[trial].status == "ok"})
    failed = {value for trial, value in told.items() if by_trial[trial].status not in ("ok", "unstable")}
    assert failed == {1000.0} and all(value < 1000.0 for value in measured_misses)


def test_ppo_never_proposes_a_masked_value(tmp_path):
    """A landscape that holds batch sizes 1 and 4 only: PPO's masks must keep it off 8 and 16."""
    import dataclasses
    import json

    from tests.helpers import REPLAY
    from tuner.task import load_task

    kept = [line for line in (REPLAY.parent / "recordings" / "smollm2-cpu.jsonl").read_text().splitlines()
            if json.loads(line)["config"]["batch_size"] in (1, 4)]
    recording = tmp_path / "small.jsonl"
    recording.write_text("\n".join(kept) + "\n")
    task = dataclasses.replace(load_task(REPLAY), recording=recording)
    evaluator, session = _session(task, tmp_path / "run", budget=16, cache_dir=tmp_path / "cache")
    assert session.allowed["batch_size"] == [1, 4]
    make_agent("ppo", policy="none").search(session, seed=2)
    evaluator.close()
    assert len(session.records) >= 16
    assert {record.config["batch_size"] for record in session.records} <= {1, 4}
    assert not [record for record in session.records if (record.error or {}).get("type") == "NotRecorded"]


def test_the_default_agent_is_coordinate_search_where_the_benchmarks_ranked_it(replay_task):
    from tuner.agents import registry
    from tuner.serving.feasibility import serving_space

    assert registry.default_agent(replay_task.space)[0] == "coordinate"  # the static-batch family of the library
    name, why = registry.default_agent(serving_space())
    assert name == "optuna" and "max_num_seqs" in why  # serving knobs: no benchmark ranked the agents on them
