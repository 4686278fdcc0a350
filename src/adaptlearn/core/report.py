"""Reports: ``report.md`` per run, and ``report.html`` + ``report.md`` over many runs.

The numbers in every table come from ``results.json``; nothing is typed in by hand. Markdown is
rendered to HTML by markdown-it-py (CommonMark + tables, raw HTML off), every string taken from a
results or config file is escaped, and figures are inlined only when they are PNG files inside
their own run folder.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptlearn.core.io import atomic_write_text

__all__ = [
    "build_report",
    "find_runs",
    "format_number",
    "load_results",
    "markdown_to_html",
    "md_code",
    "md_escape",
    "render_run_markdown",
    "results_table",
    "verdict_line",
]

log = logging.getLogger(__name__)

#: ``results.json`` layouts this report can read.
SUPPORTED_RESULTS_VERSIONS = (2,)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown (backslash before every character Markdown would act on)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def md_code(text: Any) -> str:
    """``text`` as a Markdown code span (backticks and pipes cannot break out of it)."""
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def format_number(x: Any) -> str:
    """Compact number formatting for tables (4 significant digits); ``-`` for missing."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int | float):
        if isinstance(x, float) and not math.isfinite(x):
            return "non-finite"
        return f"{x:.4g}"
    return str(x)


def _metrics_of(results: dict[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    for per_method in results["methods"].values():
        for metric in per_method:
            if not metric.startswith("_"):
                seen.setdefault(metric, None)
    return list(seen)


def _summary_cell(s: dict[str, Any]) -> str:
    n = s.get("n", 0)
    if s.get("nonfinite"):
        return f"non-finite ({s['nonfinite']} of {n})"
    cell = format_number(s.get("mean"))
    if s.get("ci_low") is not None and s.get("interval") not in (None, "none", "exact"):
        cell += f" [{format_number(s['ci_low'])}, {format_number(s['ci_high'])}]"
        cell += f" ({s['interval']}, n={n})"
    else:
        cell += f" (n={n})"
    if s.get("n_censored"):
        cell += f"; {s['n_censored']} >= {format_number(s.get('censored_at'))}"
        if s.get("mean") is None:
            cell = f">= {format_number(s.get('censored_at'))} (all {n} censored)"
    return cell


def results_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per method, per metric ``mean [interval] (kind, n)``.

    Comparisons between methods appear only in the claim-check tables, which pair values within
    one cell; this table compares nothing.
    """
    metrics = _metrics_of(results)
    directions = results.get("higher_is_better", {})
    header = ["method"]
    for metric in metrics:
        arrow = {True: " (higher better)", False: " (lower better)"}.get(directions.get(metric), "")
        header.append(metric + arrow)
    rows = []
    for method in sorted(results["methods"]):
        per = results["methods"][method]
        row = [method]
        for metric in metrics:
            s = per.get(metric)
            row.append("-" if s is None else _summary_cell(s))
        rows.append(row)
    return header, rows


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _headline(verdict: dict[str, Any] | None) -> str:
    if not verdict:
        return "NO VERDICT"
    if verdict["outcome"] == "inconclusive":
        return f"INCONCLUSIVE ({verdict['reason']})"
    return str(verdict["outcome"]).upper()


def verdict_line(results: dict[str, Any]) -> str:
    """One plain-text line: ``experiment: HEADLINE. text``."""
    v = results.get("verdict")
    text = v["text"] if v else "no verdict was computed"
    return f"{results['experiment']}: {_headline(v)}. {text}"


def _comparisons_table(verdict: dict[str, Any]) -> str:
    rows = [
        [
            c["name"],
            c["rule"],
            str(c["n_pairs"]),
            format_number(c.get("method_mean")),
            format_number(c.get("baseline_mean")),
            c["effect_display"] + (f" ({c['interval']})" if c.get("interval") != "none" else ""),
            c["status"] + (f": {c['note']}" if c.get("note") else ""),
        ]
        for c in verdict["comparisons"]
    ]
    header = ["comparison", "rule", "pairs", "method", "baseline", "effect [CI]", "status"]
    return _markdown_table(header, rows)


def _verdict_markdown(verdict: dict[str, Any], level: str) -> list[str]:
    lines = [
        f"**{md_escape(_headline(verdict))}.** {md_escape(verdict['text'])}",
        "",
        f"*Claim checked:* {md_escape(verdict['statement'])}",
        "",
        _comparisons_table(verdict),
        "",
    ]
    if verdict.get("preconditions"):
        lines += [
            f"{level}# Controls and preconditions",
            "",
            _markdown_table(
                ["precondition", "ok", "if not", "detail"],
                [
                    [p["name"], {True: "yes", False: "no", None: "unchecked"}[p["ok"]],
                     p["reason"], p.get("detail", "")]
                    for p in verdict["preconditions"]
                ],
            ),
            "",
        ]
    return lines


def render_run_markdown(
    results: dict[str, Any],
    figure_prefix: str = "",
    *,
    level: int = 1,
    figures: bool = True,
) -> str:
    """The ``report.md`` of one run (figures linked relative to the run folder).

    Args:
        results: a ``results.json`` document.
        figure_prefix: prefix of figure links (the run folder, seen from the report).
        level: heading level of the title (sections are one deeper).
        figures: include the figure links.
    """
    h = "#" * level
    env = results.get("environment", {})
    verdict = results.get("verdict")
    lines = [
        f"{h} {md_escape(results['experiment'])}",
        "",
        f"*Paper:* {md_escape(results['paper'])}",
        "",
        f"*Claim:* {md_escape(results['claim'])}",
        "",
    ]
    if verdict:
        lines += [f"{h}# Verdict on the paper's claim", "", *_verdict_markdown(verdict, h + "#")]
    else:
        lines += ["**NO VERDICT.** No verdict was computed.", ""]
    for ours in results.get("our_verdicts", []):
        lines += [f"{h}# Our addition (not the paper's claim)", ""]
        lines += _verdict_markdown(ours, h + "#")
    lines += [
        f"{h}# Setup",
        "",
        f"- preset {md_code(results['preset'])}, seeds {md_escape(results['seeds'])}, "
        f"device {md_code(results.get('device'))}",
        f"- machine: {md_escape(env.get('platform', '?'))}, "
        f"{md_escape(env.get('cpu_count', '?'))} CPUs; commit {md_code(env.get('git_commit'))}",
        f"- wall time {format_number(results.get('wall_s'))} s",
    ]
    if results.get("command"):
        lines.append(f"- reproduce: {md_code(results['command'])}")
    header, rows = results_table(results)
    lines += ["", f"{h}# Results", "", _markdown_table(header, rows), ""]
    timing = {m: v["_timing"] for m, v in results["methods"].items() if "_timing" in v}
    if timing:
        lines += ["Time per method (summed over its trials):", ""]
        lines.append(
            _markdown_table(
                ["method", "wall s", "CPU s"],
                [
                    [m, format_number(t.get("wall_s")), format_number(t.get("cpu_s"))]
                    for m, t in timing.items()
                ],
            )
        )
        lines.append("")
    for section in results.get("sections", []):
        lines += [f"{h}# {md_escape(section['title'])}", "", str(section["markdown"]), ""]
    if figures and results.get("figures"):
        lines += [f"{h}# Figures", ""]
        lines += [
            f"![{md_escape(Path(f).stem)}](<{figure_prefix}{f}>)"
            for f in results["figures"]
            if _safe_figure_name(f)
        ]
        lines.append("")
    return "\n".join(lines)


def _markdown_renderer() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_to_html(text: str) -> str:
    """Render Markdown (CommonMark + tables, raw HTML escaped); tables scroll when wide."""
    out = _markdown_renderer().render(text)
    return out.replace("<table>", "<div class='scroll'><table>").replace(
        "</table>", "</table></div>"
    )


def find_runs(root: str | os.PathLike[str]) -> list[Path]:
    """Finished run folders under ``root`` (folders holding a ``results.json``), sorted."""
    root = Path(root)
    if (root / "results.json").exists():
        return [root]
    return sorted(
        p.parent for p in root.rglob("results.json") if not p.parent.name.endswith(".partial")
    )


def load_results(run: Path) -> dict[str, Any]:
    """Read and check ``run/results.json``; raise ValueError naming the file if unusable."""
    path = run / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    version = data.get("results_version")
    if version not in SUPPORTED_RESULTS_VERSIONS:
        raise ValueError(
            f"{path}: results layout {version!r} is not one this report reads "
            f"{SUPPORTED_RESULTS_VERSIONS} (rerun the experiment)"
        )
    for key in ("experiment", "paper", "claim", "preset", "seeds", "methods"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    if not isinstance(data["methods"], dict):
        raise ValueError(f"{path}: `methods` is not an object")
    return data


def _safe_figure_name(fig: Any) -> bool:
    if not isinstance(fig, str) or not fig.endswith(".png"):
        return False
    p = Path(fig)
    return not p.is_absolute() and ".." not in p.parts


def _figure_bytes(run: Path, fig: Any) -> bytes | None:
    """The PNG at ``run/fig`` if it is a PNG file inside ``run``; else None."""
    if not _safe_figure_name(fig):
        return None
    base = run.resolve()
    path = (run / fig).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    data = path.read_bytes()
    return data if data.startswith(_PNG_MAGIC) else None


@dataclass
class _Run:
    path: Path
    results: dict[str, Any]


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} img{max-width:100%;border:1px solid #eee;margin:0.5em 0}
.scroll{overflow-x:auto;max-width:100%}
pre{background:#f6f8fa;padding:0.6em;overflow-x:auto}
section.supported h2,section.supported h3+p strong{color:#1a7f37}
section.not-supported h2,section.not-supported h3+p strong{color:#cf222e}
section.inconclusive h2,section.inconclusive h3+p strong{color:#9a6700}
section{border-top:2px solid #ddd;margin-top:2em}
"""


def _summary_rows(runs: Sequence[_Run], out_dir: Path) -> list[list[str]]:
    rows = []
    for run in runs:
        r = run.results
        v = r.get("verdict")
        rows.append(
            [
                r["experiment"],
                v["outcome"] if v else "no verdict",
                v["reason"] if v else "-",
                str(r["preset"]),
                ", ".join(str(s) for s in r["seeds"]) if isinstance(r["seeds"], list) else "?",
                str(r.get("environment", {}).get("git_commit") or "?")[:10],
                os.path.relpath(run.path, out_dir),
            ]
        )
    return rows


_SUMMARY_HEADER = ["experiment", "verdict", "reason", "preset", "seeds", "commit", "run folder"]


def build_report(
    root: str | os.PathLike[str] = "runs",
    out: str | os.PathLike[str] | None = None,
    *,
    all_runs: bool = False,
) -> tuple[Path, Path]:
    """Write ``report.html`` (figures inline) and ``report.md`` over the runs under ``root``.

    Args:
        root: a run folder or a folder of runs.
        out: where to write (default ``root``).
        all_runs: every finished run; by default only the latest run of each experiment.

    Returns:
        Paths of the HTML and Markdown reports.
    """
    root = Path(root)
    found = find_runs(root)
    if not found:
        raise FileNotFoundError(f"no finished runs (folders with results.json) under {root}")
    out_dir = Path(out) if out is not None else (root if root.is_dir() else root.parent)
    runs: list[_Run] = []
    skipped: list[str] = []
    for path in found:
        try:
            runs.append(_Run(path, load_results(path)))
        except ValueError as err:
            log.warning("skipping run: %s", err)
            skipped.append(str(err))
    if not all_runs:
        latest: dict[str, _Run] = {}
        for run in runs:  # folders start with a UTC timestamp: the last name is the newest
            name = run.results["experiment"]
            if name not in latest or run.path.name > latest[name].path.name:
                latest[name] = run
        runs = [latest[k] for k in sorted(latest)]
    else:
        runs.sort(key=lambda r: (r.results["experiment"], r.path.name))

    scope = "every run" if all_runs else "the latest run of each experiment"
    head = [
        "# adaptlearn report",
        "",
        f"{len(runs)} run(s) under {md_code(root)} ({scope}).",
        "",
        "## Verdicts",
        "",
        _markdown_table(_SUMMARY_HEADER, _summary_rows(runs, out_dir)),
        "",
    ]
    if skipped:
        head += ["## Skipped run folders", ""] + [f"- {md_escape(s)}" for s in skipped] + [""]
    md_parts = list(head)
    html_parts = [markdown_to_html("\n".join(head))]
    for run in runs:
        r = run.results
        rel = os.path.relpath(run.path, out_dir)
        body = render_run_markdown(r, figure_prefix=f"{rel}/", level=2)
        md_parts += [body, f"Run folder: {md_code(rel)}", ""]
        v = r.get("verdict")
        cls = (v["outcome"] if v else "inconclusive").replace(" ", "-")
        section = [f"<section class='{cls}'>"]
        section.append(markdown_to_html(render_run_markdown(r, level=2, figures=False)))
        section.append(f"<p>Run folder: <code>{html.escape(rel)}</code></p>")
        for fig in r.get("figures", []):
            data = _figure_bytes(run.path, fig)
            if data is None:
                log.warning("%s: figure %r is not a PNG inside the run folder; left out", rel, fig)
                continue
            section.append(
                f"<figure><img alt='{html.escape(Path(fig).stem, quote=True)}' "
                f"src='data:image/png;base64,{base64.b64encode(data).decode()}'/>"
                f"<figcaption>{html.escape(fig)}</figcaption></figure>"
            )
        section.append("</section>")
        html_parts.append("\n".join(section))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>adaptlearn report</title>"
        f"<style>{_CSS}</style></head><body>" + "\n".join(html_parts) + "</body></html>\n"
    )
    html_path = atomic_write_text(out_dir / "report.html", page)
    md_path = atomic_write_text(out_dir / "report.md", "\n".join(md_parts))
    return html_path, md_path
