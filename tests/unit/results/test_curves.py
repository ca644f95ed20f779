"""Best-so-far curves never mislead: a seed with no feasible config yet is counted, never silently left out."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict

import pytest

from tests.helpers import REPLAY, infertune
from tuner.results.curves import none_value, seed_band


def test_a_seed_that_finds_its_first_config_late_does_not_pull_the_mean_down():
    """The issue's case: one seed has 45 tok/s from the start, the other finds 40 at measurement 2."""
    band = seed_band([[45.0, 45.0], [math.nan, 40.0]], none_value([[45.0, 45.0], [math.nan, 40.0]], maximize=True))
    assert band.mean == [22.5, 42.5]  # not [45, 42.5], which falls
    assert band.feasible_share == [0.5, 1.0]
    assert (band.low, band.high) == ([0.0, 40.0], [45.0, 45.0])


def test_when_minimizing_none_yet_counts_as_the_worst_value_found():
    curves = [[0.9, 0.5], [math.nan, 0.3]]
    none = none_value(curves, maximize=False)
    assert none == 0.9
    assert seed_band(curves, none).mean == pytest.approx([0.9, 0.4])  # never rises
    assert math.isnan(none_value([[math.nan]], maximize=False))  # nothing found anywhere: no value to count


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a JSON file")

    return json.loads(text, parse_constant=refuse)


def test_compare_curves_never_fall_and_count_every_seed(tmp_path):
    result = infertune("compare", str(REPLAY), "--agents", "optuna,random", "--budget", "8", "--seeds", "4",
                       "--run", "c", "--no-mlflow", runs=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "c"
    per_seed: dict[tuple[str, int], list[float | None]] = defaultdict(list)
    for row in csv.DictReader((out / "curves.csv").read_text().splitlines()):
        value = float(row["best_tokens_per_s"]) if row["best_tokens_per_s"] else None
        assert row["feasible"] == ("1" if value is not None else "0")
        per_seed[row["agent"], int(row["seed"])].append(value)
    assert any(value is None for curve in per_seed.values() for value in curve)  # the case under test happened
    summary = list(csv.DictReader((out / "curves_summary.csv").read_text().splitlines()))
    report = _strict_json((out / "compare.json").read_text())
    assert report["none_counts_as"] == 0.0
    for agent in ("optuna", "random"):
        rows = [row for row in summary if row["agent"] == agent]
        seeds = [curve for (name, _), curve in per_seed.items() if name == agent]
        means = [float(row["mean_best_tokens_per_s"]) for row in rows]
        assert means == sorted(means)  # a best-so-far mean never decreases
        for step, row in enumerate(rows):
            column = [curve[step] for curve in seeds]
            assert float(row["feasible_share"]) == sum(value is not None for value in column) / 4
            assert float(row["mean_best_tokens_per_s"]) == pytest.approx(
                sum(value or 0.0 for value in column) / 4, rel=1e-5)
        final = next(item for item in report["agents"] if item["agent"] == agent)
        assert final["final_mean"] == pytest.approx(means[-1], rel=1e-5)
        assert final["feasible_seeds"] == sum(curve[-1] is not None for curve in seeds)
    assert "a seed with no feasible config counted as 0" in result.stdout
