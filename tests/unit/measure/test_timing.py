"""Timing statistics used by the measurement protocol."""

from __future__ import annotations

import pytest

from tuner.measure.timing import agreeing_window, cv, repeats_agree, window_figures
from tuner.util.numbers import percentile


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


def test_every_figure_comes_from_the_agreeing_window():
    steady = [[(0.5, 0.1), (0.5, 0.1)]] * 3  # three agreeing passes of two 0.5 s calls, 8 tokens each
    figures = window_figures(steady, tokens_per_call=8, new_tokens=4)
    assert figures["tokens_per_s"] == pytest.approx(16.0)
    assert figures["latency_p50_s"] == figures["latency_p95_s"] == pytest.approx(0.5)
    assert figures["ttft_s"] == pytest.approx(0.1) and figures["tpot_s"] == pytest.approx(0.4 / 3)
    assert figures["cv"] == 0.0
    # A slow first pass (warming caches, a busy neighbour) precedes the window: no figure moves.
    slow_start = [[(5.0, 2.0), (4.0, 1.0)], *steady]
    assert window_figures(slow_start, tokens_per_call=8, new_tokens=4) == figures


def test_the_window_is_the_last_three_passes():
    assert agreeing_window(5) == [2, 3, 4] and agreeing_window(2) == [0, 1]
    passes = [[(1.0, 0.2)], [(2.0, 0.2)], [(2.0, 0.2)], [(3.0, 0.2)]]
    figures = window_figures(passes, tokens_per_call=6, new_tokens=2)
    assert figures["tokens_per_s"] == pytest.approx(18 / 7)  # 3 calls x 6 tokens over 2 + 2 + 3 s
    assert figures["latency_p95_s"] == pytest.approx(2.9)
    # the agreement judged on other pass times (the slowest rank's) is what cv reports
    assert window_figures(passes, 6, 2, pass_times=[9.0, 1.0, 1.0, 1.0])["cv"] == 0.0
