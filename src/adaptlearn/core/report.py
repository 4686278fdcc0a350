"""Reports: ``report.md`` per run, and ``report.html`` + ``report.md`` over many runs.

The numbers in every table come from ``results.json``; nothing is typed in by hand.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from adaptlearn.core.io import atomic_write_text

__all__ = ["build_report", "find_runs", "format_number", "render_run_markdown", "results_table"]


def format_number(x: Any) -> str:
    """Compact number formatting for tables (4 significant digits)."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, int | float):
        return f"{x:.4g}"
    return str(x)


def _metrics_of(results: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for per_method in results["methods"].values():
        for metric in per_method:
            if not metric.startswith("_"):
                seen.setdefault(metric, None)
    return list(seen)


def results_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, per metric ``mean [CI] (n)`` and delta vs baseline."""
    metrics = _metrics_of(results)
    baseline = results.get("baseline")
    base = results["methods"].get(baseline, {}) if baseline else {}
    directions = results.get("higher_is_better", {})
    header = ["method"]
    for metric in metrics:
        arrow = {True: " (higher better)", False: " (lower better)"}.get(directions.get(metric), "")
        header.append(metric + arrow)
        if base:
            header.append(f"{metric} vs {baseline}")
    rows = []
    order = sorted(results["methods"], key=lambda m: (m != baseline, m))
    for method in order:
        per = results["methods"][method]
        row = [method + (" (baseline)" if method == baseline else "")]
        for metric in metrics:
            s = per.get(metric)
            if s is None:
                row.append("-")
            else:
                cell = format_number(s["mean"])
                if s["n"] > 1 and not math.isnan(s["ci_low"]):
                    cell += f" [{format_number(s['ci_low'])}, {format_number(s['ci_high'])}]"
                row.append(cell + f" (n={s['n']})")
            if base:
                b = base.get(metric)
                if s is None or b is None or method == baseline:
                    row.append("-")
                else:
                    delta = s["mean"] - b["mean"]
                    ratio = s["mean"] / b["mean"] if b["mean"] not in (0, 0.0) else math.nan
                    row.append(f"{delta:+.4g} (x{format_number(ratio)})")
        rows.append(row)
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _verdict_line(results: dict[str, Any]) -> str:
    supported = results.get("supported")
    tag = {True: "SUPPORTED", False: "NOT SUPPORTED", None: "INCONCLUSIVE"}[supported]
    return f"**Verdict: {tag}.** {results.get('verdict') or 'No verdict was computed.'}"


def markdown_to_html(text: str) -> str:
    """Minimal Markdown for report sections: pipe tables, paragraphs, code spans, bold."""
    blocks, out = text.strip().split("\n\n"), []
    for block in blocks:
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        if len(lines) >= 2 and all(ln.strip().startswith("|") for ln in lines):
            cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
            body = [r for r in cells[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append(_html_table(cells[0], body))
        else:
            para = html.escape(" ".join(lines))
            para = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", para)
            para = re.sub(r"`(.+?)`", r"<code>\1</code>", para)
            out.append(f"<p>{para}</p>")
    return "\n".join(out)


def render_run_markdown(results: dict[str, Any], figure_prefix: str = "") -> str:
    """The ``report.md`` of one run (figures linked relative to the run folder)."""
    env = results.get("environment", {})
    lines = [
        f"# {results['experiment']}",
        "",
        f"*Paper:* {results['paper']}",
        "",
        f"*Claim:* {results['claim']}",
        "",
        _verdict_line(results),
        "",
        "## Setup",
        "",
        f"- preset `{results['preset']}`, seeds {results['seeds']}, device `{results['device']}`",
        f"- machine: {env.get('platform', '?')}, {env.get('cpu_count', '?')} CPUs;"
        f" commit `{env.get('git_commit')}`",
        f"- wall time {format_number(results.get('wall_s'))} s",
    ]
    if results.get("command"):
        lines.append(f"- reproduce: `{results['command']}`")
    header, rows = results_table(results)
    lines += ["", "## Results", "", _markdown_table(header, rows), ""]
    timing = {m: v["_timing"] for m, v in results["methods"].items() if "_timing" in v}
    if timing:
        lines += ["Time per method (summed over its trials):", ""]
        lines.append(
            _markdown_table(
                ["method", "wall s", "CPU s"],
                [
                    [m, format_number(t["wall_s"]), format_number(t["cpu_s"])]
                    for m, t in timing.items()
                ],
            )
        )
        lines.append("")
    for section in results.get("sections", []):
        lines += [f"## {section['title']}", "", section["markdown"], ""]
    if results.get("figures"):
        lines += ["## Figures", ""]
        lines += [f"![{Path(f).stem}]({figure_prefix}{f})" for f in results["figures"]]
        lines.append("")
    return "\n".join(lines)


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Finished run folders under ``root`` (folders holding a ``results.json``), sorted."""
    root = Path(root)
    if (root / "results.json").exists():
        return [root]
    return sorted(
        p.parent for p in root.rglob("results.json") if not p.parent.name.endswith(".partial")
    )


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3} img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
.supported{color:#1a7f37}.not{color:#cf222e}.inconclusive{color:#9a6700}
section{border-top:2px solid #ddd;margin-top:2em}
"""


def build_report(
    root: str | os.PathLike[str] = "runs", out: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Write ``report.html`` (figures inline) and ``report.md`` for every run under ``root``.

    Returns:
        Paths of the HTML and Markdown reports (in ``out``, default ``root``).
    """
    root = Path(root)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no finished runs (folders with results.json) under {root}")
    out_dir = Path(out) if out is not None else (root if root.is_dir() else root.parent)
    md_parts = ["# adaptlearn report", "", f"{len(runs)} run(s) under `{root}`.", ""]
    html_parts = [
        f"<h1>adaptlearn report</h1><p>{len(runs)} run(s) under <code>"
        f"{html.escape(str(root))}</code>.</p>"
    ]
    for run in runs:
        results = json.loads((run / "results.json").read_text())
        rel = os.path.relpath(run, out_dir)
        md_parts.append(
            render_run_markdown(results, figure_prefix=f"{rel}/")
            .replace("\n# ", "\n## ")
            .replace("# " + results["experiment"], f"## {results['experiment']}", 1)
        )
        md_parts.append(f"Run folder: `{rel}`\n")
        header, rows = results_table(results)
        cls = {True: "supported", False: "not", None: "inconclusive"}[results.get("supported")]
        tag = {True: "SUPPORTED", False: "NOT SUPPORTED", None: "INCONCLUSIVE"}[
            results.get("supported")
        ]
        parts = [
            f"<section><h2>{html.escape(results['experiment'])}</h2>",
            f"<p><em>Paper:</em> {html.escape(results['paper'])}</p>",
            f"<p><em>Claim:</em> {html.escape(results['claim'])}</p>",
            f"<p class='{cls}'><strong>Verdict: {tag}.</strong> "
            f"{html.escape(results.get('verdict') or 'No verdict was computed.')}</p>",
            f"<p>Run <code>{html.escape(rel)}</code>, preset <code>{results['preset']}</code>, "
            f"seeds {results['seeds']}, wall {format_number(results.get('wall_s'))} s.</p>",
            _html_table(header, rows),
        ]
        for section in results.get("sections", []):
            parts.append(f"<h3>{html.escape(section['title'])}</h3>")
            parts.append(markdown_to_html(section["markdown"]))
        for fig in results.get("figures", []):
            path = run / fig
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(Path(fig).stem)}' "
                    f"src='data:image/png;base64,{data}'/>"
                    f"<figcaption>{html.escape(fig)}</figcaption></figure>"
                )
        parts.append("</section>")
        html_parts.append("\n".join(parts))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>adaptlearn report</title>"
        f"<style>{_CSS}</style></head><body>" + "\n".join(html_parts) + "</body></html>\n"
    )
    html_path = atomic_write_text(out_dir / "report.html", page)
    md_path = atomic_write_text(out_dir / "report.md", "\n".join(md_parts))
    return html_path, md_path
