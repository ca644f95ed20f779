"""Pictures people would rather look at than read: Pareto fronts and best-so-far curves (matplotlib, Agg)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuner.records import Record
from tuner.util.formatting import MISSING, shown
from tuner.util.numbers import is_number


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(axis, xlabel: str, ylabel: str) -> None:
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _points(records: Sequence[Record], x: str, y: str) -> tuple[list[Record], list[float], list[float]]:
    """The records with both metrics known (a null or NaN cannot be placed on an axis)."""
    kept = [record for record in records if is_number(record.metrics.get(x)) and is_number(record.metrics.get(y))]
    return kept, [record.metrics[x] for record in kept], [record.metrics[y] for record in kept]


def pareto_plot(records: Sequence[Record], front: Sequence[Record], path: Path, title: str) -> Path:
    """Throughput against p95 latency and against top-1 agreement; the front highlighted, best starred.

    Records missing a plotted metric are left off that panel, and the panel says how many (``n/a``).
    """
    plt = _pyplot()
    measured = [record for record in records if record.status in ("ok", "unstable")]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, (metric, label) in zip(axes, (("latency_p95_s", "latency p95 (s)"),
                                            ("top1_agree", "top-1 agreement with reference")), strict=True):
        placed, xs, ys = _points(measured, metric, "tokens_per_s")
        axis.scatter(xs, ys, c="#bbbbbb", label="measured", s=22)
        on_front, xs, ys = _points(front, metric, "tokens_per_s")
        axis.scatter(xs, ys, c="#d62728", label="Pareto front", s=40)
        for record in on_front:
            axis.annotate(str(record.trial), (record.metrics[metric], record.metrics["tokens_per_s"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
        missing = len(measured) - len(placed)
        if missing:
            axis.text(0.5, 0.5 if not placed else 0.02, f"{missing} of {len(measured)} measured: {metric} or "
                      f"tokens_per_s {MISSING}", transform=axis.transAxes, ha="center", fontsize=8, color="#555555")
        _label(axis, label, "tokens / s")
    axes[0].legend(loc="best", fontsize=8)
    figure.suptitle(title)
    return _save(plt, figure, path)


def curves_plot(curves: Mapping[str, Sequence[Sequence[float]]], path: Path, title: str, ylabel: str,
                reference: float | None = None, xlabel: str = "measurements") -> Path:
    """Best-so-far against measurements: per agent the mean over seeds and a min-max band."""
    import numpy as np

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for agent, runs in curves.items():
        values = np.array(runs, dtype=float)
        steps = np.arange(1, values.shape[1] + 1)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step where no seed has a value yet stays NaN
            mean = np.nanmean(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        axis.plot(steps, mean, label=f"{agent} (mean of {len(runs)})")
        axis.fill_between(steps, low, high, alpha=0.15)
    if is_number(reference):  # nothing feasible anywhere: no line to draw
        axis.axhline(reference, color="black", linestyle="--", linewidth=1, label="best known")
        axis.axhline(0.95 * reference, color="grey", linestyle=":", linewidth=1, label="95% of best known")
    _label(axis, xlabel, ylabel)
    axis.legend(fontsize=8)
    axis.set_title(title)
    return _save(plt, figure, path)


def best_so_far_plot(curves: Mapping[str, Sequence[Sequence[float]]], path: Path, title: str, ylabel: str,
                     reference: float | None = None, maximize: bool = True) -> Path:
    """Best-so-far against measurements, per agent: the mean over every seed with a min-max band (a seed with no
    feasible config yet counts as the value the legend names, so the mean never falls), and below it the share of
    seeds that have a feasible config."""
    from tuner.results.curves import none_value, seed_band

    plt = _pyplot()
    figure, (axis, share_axis) = plt.subplots(2, 1, figsize=(7.5, 6.2), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 1]})
    none = none_value([curve for runs in curves.values() for curve in runs], maximize)
    for agent, runs in curves.items():
        band = seed_band(runs, none)
        steps = range(1, len(band.mean) + 1)
        label = f"{agent}: mean of {len(runs)} seeds" if len(runs) > 1 else agent
        line, = axis.plot(steps, band.mean, label=label, drawstyle="steps-post")  # a best so far moves in steps
        axis.fill_between(steps, band.low, band.high, alpha=0.15, color=line.get_color(), step="post")
        share_axis.step(steps, [100 * share for share in band.feasible_share], where="post",
                        color=line.get_color(), label=agent)
    if is_number(reference):  # nothing feasible anywhere: no line to draw
        axis.axhline(reference, color="black", linestyle="--", linewidth=1, label="best known")
        target = 0.95 * reference if maximize else reference / 0.95
        axis.axhline(target, color="grey", linestyle=":", linewidth=1, label="95% of best known")
    _label(axis, "", ylabel)
    axis.legend(fontsize=8, title=f"band: min-max over seeds; no feasible config yet = {shown(none, '.4g')}",
                title_fontsize=8)
    axis.set_title(title)
    share_axis.set_ylim(-5, 105)
    _label(share_axis, "measurements", "seeds with a\nfeasible config (%)")
    return _save(plt, figure, path)


def learning_curve_plot(curve: Sequence[tuple[int, float]], path: Path, title: str) -> Path:
    """Pretraining: the mean final quality (best found / optimum) of the episodes of each rollout."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    if curve:
        steps, quality = zip(*curve, strict=True)
        axis.plot(steps, quality, color="tab:blue")
    axis.set_ylim(0.0, 1.02)
    axis.set_title(title)
    _label(axis, "environment steps", "episode's best / optimum (mean per rollout)")
    return _save(plt, figure, path)


def transfer_plot(summary: Mapping, path: Path) -> Path:
    """Leave-one-out benchmark: best found / optimum against the budget, per agent, with 95% CI bars."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    budgets = summary["budgets"]
    for agent, entry in summary["agents"].items():
        means = [entry["best_over_optimum"][budget][0] for budget in budgets]
        halves = [entry["best_over_optimum"][budget][1] for budget in budgets]
        axis.errorbar(budgets, means, yerr=[half if half == half else 0.0 for half in halves], marker="o",
                      capsize=3, label=agent)
    axis.set_title(f"held-out landscapes ({len(summary['landscapes'])}): best found / optimum")
    axis.set_xticks(budgets)
    axis.legend(title="bars: 95% CI over landscapes x seeds", fontsize=8, title_fontsize=8)
    _label(axis, "budget (measurements)", "best found / optimum")
    return _save(plt, figure, path)


def accuracy_speed_plot(records: Sequence[Record], path: Path, title: str) -> Path:
    """Top-1 agreement with the reference against throughput, every measured config: what speed costs in accuracy.

    Configs inside the objective's constraints are filled, the others hollow; the deployable best is starred.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    measured = [record for record in records if record.status in ("ok", "unstable")]
    inside = [record for record in measured if record.feasible]
    outside = [record for record in measured if not record.feasible]
    for group, style in ((inside, {"c": "tab:blue", "label": "inside the constraints"}),
                         (outside, {"facecolors": "none", "edgecolors": "tab:red", "label": "outside"})):
        _, xs, ys = _points(group, "tokens_per_s", "top1_agree")
        axis.scatter(xs, ys, s=26, **style)
    ranked = [record for record in inside if record.status == "ok"]
    if ranked:
        best = max(ranked, key=lambda record: record.objective)
        if is_number(best.metrics.get("tokens_per_s")) and is_number(best.metrics.get("top1_agree")):
            axis.scatter([best.metrics["tokens_per_s"]], [best.metrics["top1_agree"]], marker="*", s=220,
                         c="gold", edgecolors="black", label=f"best deployable (trial {best.trial})", zorder=3)
    missing = len(measured) - len(_points(measured, "tokens_per_s", "top1_agree")[0])
    if missing:
        axis.text(0.5, 0.02, f"{missing} of {len(measured)}: tokens_per_s or top1_agree {MISSING}",
                  transform=axis.transAxes, ha="center", fontsize=8, color="#555555")
    _label(axis, "tokens / s", "top-1 agreement with the reference")
    axis.legend(fontsize=8, loc="best")
    axis.set_title(title)
    return _save(plt, figure, path)


def time_split_plot(split: Mapping[str, float], path: Path, title: str) -> Path:
    """Where the wall time went: one horizontal bar per part, in seconds."""
    plt = _pyplot()
    parts = [(name, seconds) for name, seconds in split.items() if seconds > 0]
    figure, axis = plt.subplots(figsize=(7.5, 0.5 * max(2, len(parts)) + 1.2))
    axis.barh([name for name, _ in parts], [seconds for _, seconds in parts], color="tab:blue")
    total = sum(seconds for _, seconds in parts) or 1.0
    for position, (_, seconds) in enumerate(parts):
        axis.text(seconds, position, f" {seconds:.0f} s ({100 * seconds / total:.0f}%)", va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xlim(0, max([seconds for _, seconds in parts], default=1.0) * 1.3)
    _label(axis, "seconds", "")
    axis.set_title(title)
    return _save(plt, figure, path)
