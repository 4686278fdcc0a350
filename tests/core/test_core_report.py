"""The report: verdict summary first, aligned tables, escaped strings, safe figures."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from adaptlearn.core.io import atomic_write_json
from adaptlearn.core.report import build_report, load_results, render_run_markdown
from adaptlearn.core.stats import summarize
from adaptlearn.core.verdict import Claim, Comparison, Precondition, judge

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def _results(name: str, *, effect: float = 2.0, preset: str = "quick", **extra) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(5):
        b = float(rng.normal())
        rows.append({"method": "base", "seed": seed, "|A'| size": b})
        rows.append({"method": "new", "seed": seed, "|A'| size": b + effect + 0.1 * rng.normal()})
    claim = Claim("new | beats base", (Comparison("|A'| size", "new", "base"),))
    v = judge(claim, rows, preset=preset, preconditions=[Precondition("oracle <b>", ok=True)])
    doc = {
        "results_version": 2,
        "experiment": name,
        "family": "core",
        "paper": "A paper | with a pipe",
        "claim": "a claim with <script>alert(1)</script>",
        "preset": preset,
        "seed": 0,
        "seeds": [0, 1, 2, 3, 4],
        "device": "cpu",
        "higher_is_better": {"|A'| size": True},
        "methods": {
            m: {"|A'| size": summarize([r["|A'| size"] for r in rows if r["method"] == m])}
            for m in ("base", "new")
        },
        "verdict": v.as_dict(),
        "our_verdicts": [],
        "supported": v.supported,
        "figures": [],
        "sections": [{"title": "Notes", "markdown": "```\nline one\nline two\n```"}],
        "extra": {},
        "command": "adaptlearn run x",
        "environment": {"platform": "linux", "cpu_count": 2, "git_commit": "abc"},
        "wall_s": 1.0,
    }
    doc.update(extra)
    return doc


def _write_run(root: Path, name: str, stamp: str, doc: dict) -> Path:
    run = root / name / f"{stamp}-cafe"
    atomic_write_json(run / "results.json", doc)
    return run


class _Tables(HTMLParser):
    """Collects, per table, the number of cells in each row (header included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)


def test_summary_table_comes_first_and_every_row_matches_its_header(tmp_path):
    _write_run(tmp_path, "exp-b", "20260101T000000Z", _results("exp-b"))
    _write_run(tmp_path, "exp-a", "20260101T000000Z", _results("exp-a", effect=-2.0))
    html_path, md_path = build_report(tmp_path)
    page = html_path.read_text()
    parser = _Tables()
    parser.feed(page)
    assert len(parser.tables) >= 5
    for rows in parser.tables:
        assert len(set(rows)) == 1, rows  # header and every row have the same width
    first_table = page.index("<table>")
    assert page.index("Verdicts") < first_table < page.index("<section")
    summary = page[first_table : page.index("</table>")]
    assert "exp-a" in summary and "not supported" in summary and "supported" in summary
    assert "xnan" not in page and "NaN" not in page
    md = md_path.read_text()
    assert md.index("## Verdicts") < md.index("## exp-a")


def test_strings_from_results_are_escaped(tmp_path):
    _write_run(tmp_path, "x", "20260101T000000Z", _results("x", preset="<i>quick</i>"))
    page = build_report(tmp_path)[0].read_text()
    assert "<script>" not in page and "<b>" not in page and "<i>quick" not in page
    assert "&lt;script&gt;" in page
    # a code fence stays a block with its line breaks
    assert "<pre><code>line one\nline two\n</code></pre>" in page


def test_figures_must_be_pngs_inside_their_run(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG + b"SECRET")
    run = _write_run(tmp_path, "x", "20260101T000000Z", _results("x"))
    (run / "figures").mkdir()
    (run / "figures" / "ok.png").write_bytes(PNG)
    (run / "figures" / "fake.png").write_text("root:x:0:0")
    doc = _results(
        "x", figures=["figures/ok.png", "../secret.png", "/etc/passwd", "figures/fake.png"]
    )
    atomic_write_json(run / "results.json", doc)
    page = build_report(tmp_path)[0].read_text()
    assert page.count("data:image/png;base64,") == 1
    assert "root:x" not in page
    md = render_run_markdown(load_results(run))
    assert "ok.png" in md and "secret" not in md and "passwd" not in md


def test_corrupt_and_old_results_are_skipped_and_listed(tmp_path):
    _write_run(tmp_path, "good", "20260101T000000Z", _results("good"))
    bad = tmp_path / "bad" / "20260101T000000Z-cafe"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"experiment": "bad", "meth')
    old = _results("old")
    old.pop("results_version")
    _write_run(tmp_path, "old", "20260101T000000Z", old)
    md = build_report(tmp_path)[1].read_text()
    assert "Skipped run folders" in md and "unreadable" in md and "layout None" in md
    assert "## good" in md and "## bad" not in md


def test_latest_run_per_experiment_by_default_all_on_request(tmp_path):
    _write_run(tmp_path, "x", "20260101T000000Z", _results("x", effect=-2.0))
    _write_run(tmp_path, "x", "20260102T000000Z", _results("x", effect=2.0))
    md = build_report(tmp_path)[1].read_text()
    assert md.count("## x") == 1 and "20260102" in md and "20260101" not in md
    md_all = build_report(tmp_path, all_runs=True)[1].read_text()
    assert md_all.count("## x") == 2


def test_tiny_results_never_render_as_supported(tmp_path):
    doc = _results("x", effect=50.0, preset="tiny")
    assert doc["verdict"]["reason"] == "plumbing-only"
    _write_run(tmp_path, "x", "20260101T000000Z", doc)
    md = build_report(tmp_path)[1].read_text()
    assert "INCONCLUSIVE (plumbing-only)" in md and "**SUPPORTED" not in md
    assert json.loads((tmp_path / "x" / "20260101T000000Z-cafe" / "results.json").read_text())
