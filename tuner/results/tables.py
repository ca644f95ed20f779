"""Plain-text tables for the terminal: measured records, search spaces, task lists."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.records import Record
from tuner.space import SearchSpace
from tuner.util.formatting import config_text, shown, table, value_text

METRIC_COLUMNS = (("tokens_per_s", "tok/s", ".1f"), ("ttft_s", "ttft_s", ".3f"), ("tpot_s", "tpot_s", ".4f"),
                  ("latency_p50_s", "p50_s", ".3f"), ("latency_p95_s", "p95_s", ".3f"),
                  ("peak_mem_mb", "mem_MB", ".0f"), ("warmup_s", "warmup_s", ".2f"),
                  ("top1_agree", "top1", ".3f"), ("kl", "kl", ".2e"), ("repeats", "reps", ""),
                  ("cv", "cv", ".3f"))
SERVING_COLUMNS = (("goodput_rps", "goodput_rps", ".2f"), ("requests_per_s", "req/s", ".2f"),
                   ("output_tokens_per_s", "out_tok/s", ".1f"), ("ttft_p50_s", "ttft_p50", ".3f"),
                   ("ttft_p95_s", "ttft_p95", ".3f"), ("itl_p95_s", "itl_p95", ".4f"), ("e2e_p95_s", "e2e_p95", ".3f"),
                   ("token_agree", "agree", ".3f"), ("server_start_s", "start_s", ".1f"),
                   ("warmup_s", "warmup_s", ".1f"), ("repeats", "reps", ""), ("cv", "spread", ".3f"))


def serving(record: Record) -> bool:
    """Whether a record was measured under load on a server (its figures are the serving ones, design §15)."""
    return "goodput_rps" in record.metrics or record.info.get("load") is not None


def metric_text(record: Record, name: str, spec: str = "") -> str:
    """One metric of a record, formatted, or ``n/a`` when the record lacks it."""
    return shown(record.metrics.get(name), spec)


def records_table(records: Sequence[Record], knobs: Sequence[str]) -> str:
    """One row per record: trial, the config, status, the design §5 metrics (§15's for records of a server)."""
    columns = SERVING_COLUMNS if any(serving(record) for record in records) else METRIC_COLUMNS
    headers = ["trial", *knobs, "status", *(label for _, label, _ in columns), "objective"]
    rows = []
    for record in records:
        status = record.status + (" (cached)" if record.cached else "")
        rows.append([record.trial, *(value_text(record.config.get(knob)) for knob in knobs), status,
                     *(metric_text(record, name, spec) for name, _, spec in columns),
                     shown(record.objective, ".3f")])
    return table(headers, rows)


def failure_lines(records: Sequence[Record]) -> list[str]:
    """One line per record that did not measure: status and the error message."""
    return [f"trial {record.trial}: {record.status}: {record.error['message']}" for record in records if record.error]


def space_table(space: SearchSpace) -> str:
    """Knobs, their choices and defaults, then the constraints."""
    rows = [[knob.name, knob.type, ", ".join(str(choice) for choice in knob.choices), knob.default, knob.doc]
            for knob in space.knobs]
    text = [f"{space.label}  ({space.source}; {space.size()} configs before constraints)", "",
            table(["knob", "type", "choices", "default", "doc"], rows)]
    if space.constraints:
        text += ["", "constraints:", *(f"  {constraint.text}" for constraint in space.constraints)]
    return "\n".join(text)


def figures_text(record: Record) -> str:
    """A measured record's key figures on one line: the serving ones (§15) or the static-batch ones (§5)."""
    if serving(record):
        return (f"goodput {metric_text(record, 'goodput_rps', '.2f')} of {metric_text(record, 'requests_per_s', '.2f')}"
                " req/s served, "
                f"TTFT p95 {metric_text(record, 'ttft_p95_s', '.3f')} s, "
                f"ITL p95 {metric_text(record, 'itl_p95_s', '.4f')} s, "
                f"token agreement {metric_text(record, 'token_agree', '.3f')}")
    return (f"{metric_text(record, 'tokens_per_s', '.1f')} tok/s, p95 {metric_text(record, 'latency_p95_s', '.3f')} s, "
            f"top1 {metric_text(record, 'top1_agree', '.3f')}, kl {metric_text(record, 'kl', '.2e')}, "
            f"{metric_text(record, 'peak_mem_mb', '.0f')} MB")


def outcome_text(record: Record) -> str:
    """Status and the key metrics of one record."""
    if record.status == "pruned":  # its reason names the figure that stopped it
        return f"pruned: {(record.info.get('pruned') or {}).get('reason', 'stopped early')}"
    if record.status not in ("ok", "unstable"):
        message = (record.error or {}).get("message", "")
        return f"{record.status}: {message[:90]}"
    if serving(record):
        return (f"{record.status} goodput {metric_text(record, 'goodput_rps', '.2f')} req/s "
                f"ttft p95 {metric_text(record, 'ttft_p95_s', '.3f')} s "
                f"itl p95 {metric_text(record, 'itl_p95_s', '.4f')} s "
                f"agree {metric_text(record, 'token_agree', '.3f')}")
    return (f"{record.status} {metric_text(record, 'tokens_per_s', '.1f')} tok/s "
            f"p95 {metric_text(record, 'latency_p95_s', '.3f')} s top1 {metric_text(record, 'top1_agree', '.3f')} "
            f"mem {metric_text(record, 'peak_mem_mb', '.0f')} MB")


def trial_line(spent: int, budget: int, record: Record, best: Record | None) -> str:
    """The progress line printed after each trial: n/N, config, outcome, best so far."""
    width = len(str(budget))
    cost = "cached, free" if record.cached else f"{shown(record.duration_s, '.1f')} s"
    if best is None:
        best_text = "best: none feasible yet"
    elif serving(best):
        best_text = f"best goodput {metric_text(best, 'goodput_rps', '.2f')} req/s (trial {best.trial})"
    else:
        best_text = f"best {metric_text(best, 'tokens_per_s', '.1f')} tok/s (trial {best.trial})"
    confirms = record.info.get("confirms")
    if confirms is not None:  # racing: beyond the budget, a config measured again before the winner is named
        return (f"[confirm] trial {record.trial} confirms trial {confirms}: {config_text(record.config)} | "
                f"{outcome_text(record)} ({cost}) | {best_text}")
    return (f"[{spent:>{width}}/{budget}] trial {record.trial}: {config_text(record.config)} | {outcome_text(record)}"
            f" ({cost}) | {best_text}")


PARETO_COLUMNS = (("tokens_per_s", ".1f"), ("latency_p95_s", ".3f"), ("top1_agree", ".3f"), ("peak_mem_mb", ".0f"))


def pareto_table(front: Sequence[Record], knobs: Sequence[str]) -> str:
    """The Pareto front as a table: trial, varying knobs, the four trade-off metrics."""
    rows = [[record.trial, *(value_text(record.config.get(knob)) for knob in knobs),
             *(metric_text(record, name, spec) for name, spec in PARETO_COLUMNS)] for record in front]
    return table(["trial", *knobs, "tok/s", "p95_s", "top1", "mem_MB"], rows)
