"""Pictures people would rather look at than read: Pareto fronts and best-so-far curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tuner.records import Record


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


def pareto_plot(records: Sequence[Record], front: Sequence[Record], path: Path, title: str) -> Path:
    """Throughput against p95 latency and against top-1 agreement; the front highlighted, best starred."""
    plt = _pyplot()
    measured = [record for record in records if record.status in ("ok", "unstable")]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, (metric, label) in zip(axes, (("latency_p95_s", "latency p95 (s)"),
                                            ("top1_agree", "top-1 agreement with reference")), strict=True):
        axis.scatter([r.metrics[metric] for r in measured], [r.metrics["tokens_per_s"] for r in measured],
                     c="#bbbbbb", label="measured", s=22)
        axis.scatter([r.metrics[metric] for r in front], [r.metrics["tokens_per_s"] for r in front],
                     c="#d62728", label="Pareto front", s=40)
        for record in front:
            axis.annotate(str(record.trial), (record.metrics[metric], record.metrics["tokens_per_s"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
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
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        axis.plot(steps, mean, label=f"{agent} (mean of {len(runs)})")
        axis.fill_between(steps, low, high, alpha=0.15)
    if reference is not None:
        axis.axhline(reference, color="black", linestyle="--", linewidth=1, label="best known")
        axis.axhline(0.95 * reference, color="grey", linestyle=":", linewidth=1, label="95% of best known")
    _label(axis, xlabel, ylabel)
    axis.legend(fontsize=8)
    axis.set_title(title)
    return _save(plt, figure, path)
