"""Coordinate search: the default config first, then one knob at a time, keeping what scores higher in bounds."""

from __future__ import annotations

from tests.helpers import ROOT
from tuner.agents import make_agent
from tuner.agents.coordinate_search import CoordinateAgent, _twin_gains
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession
from tuner.learning.transfer import replay_task
from tuner.library.catalog import load_library
from tuner.library.landscape import config_tuple, load_landscape
from tuner.objective import Bound, ObjectiveSpec
from tuner.records import Record, config_key

KEY = "benchmarks/landscapes/smollm2-cpu-key.yaml"  # the README task on an AMX Xeon: bfloat16 batch 64 is best


def _search(task, tmp_path, budget: int, seed: int = 0, agent: CoordinateAgent | None = None) -> TuningSession:
    with Evaluator(task, tmp_path / f"run-{seed}", cache_dir=tmp_path / f"cache-{seed}") as evaluator:
        session = TuningSession(evaluator, budget, on_stop=None)
        (agent or make_agent("coordinate")).search(session, seed)
    return session


def test_it_starts_at_the_default_and_climbs_one_knob_at_a_time(tmp_path):
    landscape = load_landscape(ROOT / KEY)
    task = replay_task(landscape, tmp_path / "task")
    session = _search(task, tmp_path, budget=12)
    configs = [record.config for record in session.records]
    assert configs[0] == task.space.defaults()  # the untuned baseline first
    assert configs[1] == {**configs[0], "batch_size": 64}  # an ordered knob: its largest value first
    assert configs[2] == {**configs[1], "dtype": "bfloat16"}  # then the next knob, from the better config
    assert landscape.quality(config_tuple(session.best.config)) == 1.0  # the optimum, in 3 measurements
    compiled = next(config for config in configs if config["compile"])
    assert compiled["cache_implementation"] == "static"  # compile needs a static cache: the nearest allowed config
    assert len({config_key(config) for config in configs}) == len(configs)  # nothing measured twice


def test_it_keeps_only_changes_inside_the_bounds(tmp_path, replay_task):
    session = _search(replay_task, tmp_path, budget=16)
    best = session.best
    assert best is not None and best.feasible and best.status == "ok"
    kept = [record for record in session.records if record.feasible and record.status == "ok"]
    assert best.objective == max(record.objective for record in kept)


def test_the_same_seed_proposes_the_same_configs(tmp_path, replay_task):
    first = [record.config for record in _search(replay_task, tmp_path / "a", budget=14, seed=3).records]
    again = [record.config for record in _search(replay_task, tmp_path / "b", budget=14, seed=3).records]
    assert first == again and CoordinateAgent.name == "coordinate"


def test_a_move_from_a_compiled_best_is_paid_for_only_when_its_cheap_twin_gains(tmp_path):
    # Recorded on a CPU: compiling costs ~15 s a config; batch 16 breaks the latency bound unless compiled.
    landscape = next(entry for entry in load_library() if entry.name == "lib-smollm2-decode")
    task = replay_task(landscape, tmp_path / "task")
    aware = _search(task, tmp_path / "aware", budget=14)
    plain = _search(task, tmp_path / "plain", budget=14, agent=CoordinateAgent(cost_aware=False))

    def compiled(session: TuningSession, **knobs) -> list[dict]:
        return [record.config for record in session.records
                if record.config["compile"] and all(record.config[name] == value for name, value in knobs.items())]

    # int8-dynamic breaks the accuracy floor uncompiled, and compiling does not change accuracy: never compiled
    assert compiled(plain, batch_size=16, quantization="int8-dynamic")
    assert not compiled(aware, batch_size=16, quantization="int8-dynamic")
    twin = {**compiled(plain, batch_size=16, quantization="int8-dynamic")[0], "compile": False}
    assert twin in [record.config for record in aware.records]  # screened on its twin, which was measured
    # the cheap twin of batch 16 breaks the latency bound, but it is faster: its compiled version, the optimum, is
    # still measured
    assert landscape.quality(config_tuple(aware.best.config)) == 1.0 == landscape.quality(
        config_tuple(plain.best.config))
    assert len(compiled(aware)) < len(compiled(plain))


def _record(status: str, tokens_per_s: float | None, **metrics) -> Record:
    return Record(run="r", task="t", space="s", trial=0, agent="coordinate", config={}, status=status, error=None,
                  metrics={"tokens_per_s": tokens_per_s, **metrics}, objective=0.0, feasible=True, cached=False,
                  fingerprint={}, started_at="", duration_s=1.0)


def test_a_cheap_twin_judges_a_move_by_speed_and_accuracy_not_latency():
    objective = ObjectiveSpec(bounds=(Bound("top1_agree", minimum=0.9), Bound("latency_p95_s", maximum=1.0)))
    base = _record("ok", 100.0, top1_agree=1.0, latency_p95_s=0.5)
    assert _twin_gains(_record("ok", 120.0, top1_agree=1.0, latency_p95_s=3.0), base, objective)  # compile may fix
    assert not _twin_gains(_record("ok", 90.0, top1_agree=1.0), base, objective)
    assert not _twin_gains(_record("ok", 150.0, top1_agree=0.5), base, objective)  # compiling keeps the accuracy
    assert not _twin_gains(_record("oom", None), base, objective)
    # the best's own twin failed (a model that fits only sharded): no yardstick, so the move is paid for
    assert _twin_gains(_record("oom", None), _record("oom", None), objective)
