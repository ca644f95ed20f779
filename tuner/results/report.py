"""``report.html`` (self-contained: images embedded) and ``report.md`` for one run: what a person asks of it.

The best deployable config with its exported files and how far to trust it, the trial table, the Pareto plot,
the best-so-far curve, accuracy against speed, where the wall time went, and for a compare run each agent's
curve over seeds.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from tuner.evaluation.resume import spent_budget
from tuner.records import Record
from tuner.results.comparison import best_so_far, compare_table
from tuner.results.costs import time_split
from tuner.results.run_folder import RunFolder
from tuner.results.show import certainty_lines, cost_lines
from tuner.results.tables import figures_text, metric_text
from tuner.util.formatting import MISSING, config_text, shown

FILES = "report_files"  # the Markdown report's images, beside it
TRIAL_METRICS = (("tokens_per_s", "tok/s", ".1f"), ("latency_p95_s", "p95 s", ".3f"), ("top1_agree", "top1", ".3f"),
                 ("peak_mem_mb", "mem MB", ".0f"), ("warmup_s", "warmup s", ".1f"))
EXPORT_SHOWN_BYTES = 4000  # an exported file longer than this is linked, not printed


@dataclass
class Figure:
    """One plot of the report: its file and what it shows."""

    path: Path
    title: str
    caption: str


def spent_after(records: list[Record]) -> list[int]:
    """Measurements spent once each record was in (cached and constraint-rejected configs cost nothing)."""
    spent, counts = 0, []
    for record in records:
        spent += spent_budget(record)
        counts.append(spent)
    return counts


def _figures(run: RunFolder, folder: Path) -> list[Figure]:
    """Draw (or reuse) every plot of the report into ``folder``."""
    from tuner.results.pareto import pareto_front
    from tuner.results.plots import accuracy_speed_plot, best_so_far_plot, pareto_plot, time_split_plot

    folder.mkdir(parents=True, exist_ok=True)
    records, figures = run.records, []
    summary = run.summary or {}
    metric = summary.get("metric") or "tokens_per_s"
    maximize = summary.get("direction", "maximize") == "maximize"
    measured = [record for record in records if record.status in ("ok", "unstable")]
    if measured:
        figures.append(Figure(pareto_plot(records, pareto_front(records), folder / "pareto.png", run.name),
                              "Pareto front", "Throughput against p95 latency and against top-1 agreement; the "
                              "front in red, numbered by trial."))
        figures.append(Figure(accuracy_speed_plot(records, folder / "accuracy_vs_speed.png", run.name),
                              "Accuracy against speed", "Every measured config; hollow ones break a constraint of "
                              "the objective; the star is the deployable best."))
    if run.kind == "compare" and (run.path / "best_so_far.png").is_file():
        figures.append(Figure(run.path / "best_so_far.png", "Best so far, per agent",
                              "Mean over seeds with a min-max band; a seed with no feasible config yet counts as "
                              "the legend says; below, the share of seeds that have one."))
    elif run.kind != "compare" and records:
        budget = run.budget or max(spent_after(records)[-1], 1)
        curve = best_so_far(records, spent_after(records), budget, metric, maximize)
        figures.append(Figure(best_so_far_plot({run.agent or "run": [curve]}, folder / "best_so_far.png",
                                               f"{run.name}: best {metric} so far", f"best {metric}",
                                               maximize=maximize),
                              "Best so far", f"The best deployable {metric} after each measurement."))
    split = time_split(records, summary.get("duration_s"))
    figures.append(Figure(time_split_plot(split, folder / "time_split.png", f"{run.name}: where the time went"),
                          "Where the wall time went", "; ".join(cost_lines(run))))
    return figures


def _trial_rows(records: list[Record]) -> tuple[list[str], list[list[str]]]:
    knobs = [name for name in dict.fromkeys(name for record in records for name in record.config)
             if len({str(record.config.get(name)) for record in records}) > 1]
    headers = ["trial", *knobs, "status", *(label for _, label, _ in TRIAL_METRICS), "objective", "cost"]
    rows = []
    for record in records:
        cost = "cached" if record.cached else f"{shown(record.duration_s, '.1f')} s"
        status = record.status + (f" ({(record.error or {}).get('type')})" if record.error else "")
        rows.append([str(record.trial), *(_value(record.config.get(knob)) for knob in knobs), status,
                     *(metric_text(record, name, spec) for name, _, spec in TRIAL_METRICS),
                     shown(record.objective, ".3f"), cost])
    return headers, rows


def _value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _exports(run: RunFolder) -> list[tuple[str, str | None]]:
    """(file name, its text or None when too long) of the best config's exported serving files."""
    best = run.best
    folder = run.path / best.run / "export" if run.kind == "compare" and best else run.path / "export"
    if not folder.is_dir():
        return []
    shown_files = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            text = path.read_text(errors="replace")
            shown_files.append((path.name, text if len(text) <= EXPORT_SHOWN_BYTES else None))
    return shown_files


def _heading(run: RunFolder) -> str:
    parts = [f"{run.kind} of {run.task or MISSING}"]
    if run.agent:
        parts.append(f"agent {run.agent}")
    if run.budget is not None:
        parts.append(f"budget {run.budget}")
    parts.append(run.state)
    if run.started:
        parts.append(f"started {run.started:%Y-%m-%d %H:%M} UTC")
    return ", ".join(parts)


def _best_lines(run: RunFolder) -> list[str]:
    best = run.best
    if best is None:
        return ["No deployable config: nothing was measured with stable timing inside the objective's constraints."]
    return [f"Trial {best.trial} of {best.run}, objective {shown(best.objective, '.3f')}: {config_text(best.config)}",
            figures_text(best),
            *certainty_lines(best, run.records)]


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}.best{background:#eef7ee;padding:10px 14px}"""


def render_html(run: RunFolder, figures: list[Figure]) -> str:
    """The whole report as one HTML page, every image inline."""
    best = "".join(f"<p>{html.escape(line)}</p>" for line in _best_lines(run))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>infertune report: {html.escape(run.name)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(run.name)}</h1><p>{html.escape(_heading(run))}</p>",
             f"<h2>Best deployable config</h2><div class='best' id='best'>{best}</div>"]
    exports = _exports(run)
    if exports:
        parts.append("<h3>Exported serving files (click to open)</h3>")
        for name, text in exports:
            content = html.escape(text) if text is not None else f"(over {EXPORT_SHOWN_BYTES} bytes: see export/)"
            parts.append(f"<details><summary>export/{html.escape(name)}</summary><pre>{content}</pre></details>")
    if run.kind == "compare" and run.summary and run.summary.get("agents"):
        parts.append(f"<h2>Agents</h2><pre>{html.escape(compare_table(run.summary))}</pre>")
    for figure in figures:
        parts.append(f"<figure><h2>{html.escape(figure.title)}</h2><img alt='{html.escape(figure.title)}' "
                     f"src='{_data_uri(figure.path)}' style='max-width:100%'><figcaption>"
                     f"{html.escape(figure.caption)}</figcaption></figure>")
    headers, rows = _trial_rows(run.records)
    parts.append(f"<h2>Trials ({len(rows)})</h2>{_html_table(headers, rows)}</body></html>")
    return "".join(parts)


def render_markdown(run: RunFolder, figures: list[Figure], image_folder: str) -> str:
    """The report as Markdown, its images as files under ``image_folder``."""
    lines = [f"# {run.name}", "", _heading(run), "", "## Best deployable config", ""]
    lines += [f"- {line}" for line in _best_lines(run)]
    for name, text in _exports(run):
        lines += ["", f"**export/{name}**", "", "```", text if text is not None else "(see export/)", "```"]
    if run.kind == "compare" and run.summary and run.summary.get("agents"):
        lines += ["", "## Agents", "", "```", compare_table(run.summary), "```"]
    for figure in figures:
        lines += ["", f"## {figure.title}", "", f"![{figure.title}]({image_folder}/{figure.path.name})", "",
                  figure.caption]
    headers, rows = _trial_rows(run.records)
    lines += ["", f"## Trials ({len(rows)})", "", "| " + " | ".join(headers) + " |",
              "|" + "---|" * len(headers), *("| " + " | ".join(row) + " |" for row in rows)]
    return "\n".join(lines) + "\n"


def write_report(run: RunFolder) -> list[Path]:
    """Write report.html and report.md (with report_files/) into the run's folder; returns the two reports."""
    images = run.path / FILES
    figures = _figures(run, images)
    for figure in figures:  # the Markdown report links its images from one folder
        target = images / figure.path.name
        if figure.path.resolve() != target.resolve():
            target.write_bytes(figure.path.read_bytes())
    page, text = run.path / "report.html", run.path / "report.md"
    page.write_text(render_html(run, figures))
    text.write_text(render_markdown(run, figures, FILES))
    return [page, text]
