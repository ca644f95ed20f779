"""What a person asks of a finished run, answered in text: the best config, how sure we are, what it cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tuner.evaluation.estimates import Estimate, estimate
from tuner.evaluation.session import rankable
from tuner.records import Record, config_key
from tuner.results.comparison import compare_table
from tuner.results.costs import overhead_share, pruning_saved, time_split, trial_overhead_mean
from tuner.results.run_folder import RunFolder
from tuner.results.tables import figures_text, metric_text, serving
from tuner.util.formatting import config_text, shown, table
from tuner.util.numbers import is_number


def runs_table(runs: Sequence[RunFolder]) -> str:
    """One row per run: name, kind, task, agent, budget, measurements, best objective, state, when."""
    rows = []
    for run in runs:
        best = run.best
        rows.append([run.name, run.kind, run.task or "n/a", run.agent or "n/a", shown(run.budget),
                     run.measurements, shown(best.objective, ".3f") if best else "none feasible",
                     run.state, run.started.strftime("%Y-%m-%d %H:%M") if run.started else "n/a"])
    return table(["run", "kind", "task", "agent", "budget", "measured", "best objective", "state", "started (UTC)"],
                 rows)


def certainty_lines(best: Record, records: Sequence[Record]) -> list[str]:
    """How far to trust the best: its timing repeats and spread, its accuracy, and the runner-up's distance."""
    lines = [f"timing: {metric_text(best, 'repeats')} repeats, the agreeing ones within cv "
             f"{metric_text(best, 'cv', '.3f')}" + (" (from the cache)" if best.cached else "")]
    if serving(best):
        lines.append("accuracy against the reference config's server: greedy token agreement "
                     f"{metric_text(best, 'token_agree', '.3f')}")
    else:
        lines.append("accuracy against the reference config: top-1 agreement "
                     f"{metric_text(best, 'top1_agree', '.3f')}, KL {metric_text(best, 'kl', '.2e')}, "
                     f"task accuracy {metric_text(best, 'task_accuracy', '.3f')}")
    lines += confirmation_lines(best, records)
    others = sorted((record for record in records if rankable(record) and record.config != best.config),
                    key=lambda record: record.objective, reverse=True)
    if others:
        runner = others[0]
        lines.append(f"runner-up: trial {runner.trial}, objective {shown(runner.objective, '.3f')} "
                     f"({config_text(_differences(runner.config, best.config))})")
    else:
        lines.append("runner-up: none (no other deployable config was measured)")
    unstable = sum(record.status == "unstable" for record in records)
    if unstable:
        lines.append(f"{unstable} measurements had timings that did not agree (unstable): never ranked best")
    return lines


def _interval(value: Estimate | None) -> str:
    if value is None:
        return "tokens/s interval n/a"
    return f"{value.mean:.1f} tok/s (95% interval {value.low:.1f} to {value.high:.1f}, {value.passes} passes)"


def confirmation_lines(best: Record, records: Sequence[Record]) -> list[str]:
    """Whether the winner was confirmed (racing), its pooled tokens/s interval, and the nearest rival's."""
    same = [record for record in records if record.config == best.config and record.status in ("ok", "unstable")]
    raced = [record for record in records if "confirms" in (record.info or {})]
    if not raced:
        return [f"not confirmed (measured once, no race): {_interval(estimate(same))}"]
    lines = [f"confirmed: measured {len(same)} times, {_interval(estimate(same))}"]
    rivals = {}
    for record in raced:
        if record.config != best.config:
            rivals.setdefault(config_key(record.config), [item for item in records if item.config == record.config
                                                          and item.status in ("ok", "unstable")])
    mine = estimate(same)
    for group in rivals.values():
        theirs = estimate(group)
        verdict = ("below the winner's" if mine and theirs and mine.separates_from(theirs)
                   else "overlapping the winner's: the two are not told apart")
        lines.append(f"raced against trial {group[0].trial} ({config_text(_differences(group[0].config, best.config))})"
                     f": {_interval(theirs)}, {verdict}")
    return lines


def _differences(config: dict, best: dict) -> dict:
    return {name: value for name, value in config.items() if best.get(name) != value} or config


def cost_lines(run: RunFolder) -> list[str]:
    """Measurements, cache hits, statuses and where the wall time went."""
    statuses = Counter(record.status for record in run.records)
    cached = sum(record.cached for record in run.records)
    wall = (run.summary or {}).get("duration_s")
    if wall is None and run.seed_runs:  # a compare run from before compare.json kept its duration
        walls = [(seed.summary or {}).get("duration_s") for seed in run.seed_runs]
        wall = sum(walls) if all(is_number(value) for value in walls) else None
    split = time_split(run.records, wall)
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in split.items() if seconds >= 0.5)
    confirming = sum("confirms" in (record.info or {}) for record in run.records)
    raced = f", {confirming} of them confirming the winner" if confirming else ""
    lines = [f"{run.measurements} measurements{raced}, {len(run.records)} trials ({cached} from the cache); "
             + ", ".join(f"{count} {status}" for status, count in statuses.most_common()),
             (f"wall time {wall:.0f} s" if is_number(wall) else "wall time n/a") + (f": {parts}" if parts else "")]
    share = overhead_share(split)
    ran = any(not (record.info or {}).get("replay") and not record.cached for record in run.records)
    if share is not None and ran and is_number(wall):  # a replay or a cached run ran no config: nothing to split
        per_trial = trial_overhead_mean(run.records)
        of_a_trial = shown(None if per_trial is None else 100 * per_trial, ".0f")
        lines.append(f"overhead (loading, compile, reference answers, worker, failed measurements, tuner): "
                     f"{100 * share:.0f}% of the wall time, {of_a_trial}% of a trial on average; the rest ran the "
                     "configs")
    saved = pruning_saved(run.records)
    if saved is not None:
        median, estimate = shown(saved["whole_median_s"], ".0f"), shown(saved["saved_s"], ".0f")
        lines.append(f"pruned {saved['pruned']} measurements early ({saved['at_accuracy']} on an accuracy bound before "
                     f"timing, {saved['pruned'] - saved['at_accuracy']} after a timed pass): they took "
                     f"{saved['spent_s']:.0f} s; a whole measurement took a median {median} s here, so pruning saved "
                     f"about {estimate} s")
    return lines


def show_text(run: RunFolder) -> str:
    """The terminal summary of one run."""
    head = f"{run.name}: {run.kind} of {run.task or 'n/a'}"
    if run.agent:
        head += f" with {run.agent}"
    if run.budget is not None:
        head += f", budget {run.budget}"
    lines = [head + f" ({run.state})", ""]
    best = run.best
    if best is None:
        lines.append("best deployable config: none (nothing measured with stable timing inside the constraints)")
    else:
        lines += [f"best deployable config: trial {best.trial} ({best.run}), objective {shown(best.objective, '.3f')}",
                  f"  {config_text(best.config)}",
                  f"  {figures_text(best)}",
                  "", "how sure:", *(f"  {line}" for line in certainty_lines(best, run.records))]
    if run.kind == "compare" and run.summary and run.summary.get("agents"):
        lines += ["", f"agents over {len(run.summary.get('seeds') or [])} seeds (best known "
                  f"{run.summary.get('metric')}: {shown(run.summary.get('best_known'), '.1f')}):",
                  compare_table(run.summary)]
    lines += ["", "what it cost:", *(f"  {line}" for line in cost_lines(run))]
    files = [name for name in ("summary.json", "records.jsonl", "report.html", "pareto.png", "best_so_far.png",
                               "compare.json", "export") if (run.path / name).exists()]
    lines += ["", f"files in {run.path}: {', '.join(files)}"]
    return "\n".join(lines)
