"""Timing statistics used by the measurement protocol."""

from __future__ import annotations

import pytest

from tuner.measure.timing import cv, percentile, repeats_agree


def test_percentiles_interpolate():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.95) == pytest.approx(4.8)
    assert percentile([7.0], 0.95) == 7.0


def test_repeats_agree_needs_three_close_passes():
    assert not repeats_agree([1.0, 1.0])
    assert repeats_agree([5.0, 1.0, 1.05, 1.09])
    assert not repeats_agree([1.0, 1.0, 1.2])


def test_cv():
    assert cv([2.0, 2.0, 2.0]) == 0.0
    assert cv([1.0, 3.0]) == pytest.approx(0.5)
