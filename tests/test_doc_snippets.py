"""Every Python snippet in README.md and the method cards runs (issue #22).

What is collected: each fenced block whose info string is ``python`` (or ``py``/``python3``) in
``README.md`` and in every ``src/adaptlearn/<family>/README.md`` (the method cards). Each block is
one test case, with an id ``<file>:<line>`` (the line of the block's first code line), so a
failure points at the card. Tracebacks show the card's own line numbers.

Conventions for card authors:
- A block that is not meant to run (shell commands, output, layouts, pseudo-code) is fenced with
  another info string: ```` ```text ````, ```` ```console ````, ```` ```bash ````.
- A Python block that must stay unrunnable on purpose (it needs a GPU, a download, a file the
  reader has) starts with the line ``# snippet: no-run (<reason>)``; it is collected and
  reported as skipped with that reason, so it cannot disappear silently.
- Blocks of one file run **in order in one namespace**, the way a reader reads the card: a later
  block may use names defined by an earlier one (``model``, ``loss_fn``). Each block's test runs
  the earlier blocks of its file first (once per session, cached); if one of them fails, the
  later block is skipped, naming the failing one (the failing block's own test reports the
  error).
- Snippets define their own small inputs (a few hundred examples, a few hundred steps): the
  whole module should run in seconds. Shrink the card's sizes rather than mark a block slow.
- A snippet that fails because of a known library bug outside the snippet is listed in
  ``KNOWN_FAILURES`` below (``xfail(strict=True)`` with the reason), so fixing the bug makes the
  test fail until the entry is removed.

Each block runs with the working directory set to a temporary folder and with one torch thread
(``tests/conftest.py``); warnings are errors, as everywhere in the suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_INFO = {"python", "py", "python3"}
NO_RUN = re.compile(r"^#\s*snippet:\s*no-run\b\s*(.*)$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")

#: ``"<file>:<line>" -> reason`` for snippets that fail because of a library bug outside the
#: snippet (strict xfail: the test fails as soon as the bug is fixed).
KNOWN_FAILURES: dict[str, str] = {}


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the first code line
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every family's method card, in a fixed order."""
    return [ROOT / "README.md", *sorted((ROOT / "src" / "adaptlearn").glob("*/README.md"))]


def extract_snippets(path: Path) -> list[Snippet]:
    """The ``python`` fenced blocks of a markdown file, in order (CommonMark fences)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        end = i + 1
        while end < len(lines):
            stripped = lines[end].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            end += 1
        if m.group("info").lower() in PYTHON_INFO:
            body = [ln[indent:] if ln[:indent].isspace() else ln for ln in lines[i + 1 : end]]
            out.append(Snippet(path, i + 2, "\n".join(body) + "\n"))
        i = end + 1
    return out


ALL = [s for path in doc_files() for s in extract_snippets(path)]
_namespaces: dict[Path, tuple[int, dict]] = {}  # file -> (blocks run so far, namespace)
_failed: dict[Path, str] = {}  # file -> id of the first block that raised


def _run(snippet: Snippet, namespace: dict) -> None:
    # Pad with blank lines so tracebacks carry the card's own line numbers.
    source = "\n" * (snippet.line - 1) + snippet.code
    exec(compile(source, str(snippet.path), "exec"), namespace)


def _no_run_reason(snippet: Snippet) -> str | None:
    first = snippet.code.lstrip().splitlines()[0] if snippet.code.strip() else ""
    m = NO_RUN.match(first)
    return None if m is None else (m.group(1).strip(" ()") or "marked no-run")


def _params():
    for s in ALL:
        marks = []
        if s.id in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[s.id]))
        yield pytest.param(s, id=s.id, marks=marks)


@pytest.mark.parametrize("snippet", list(_params()))
def test_snippet_runs(snippet: Snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    same_file = [s for s in ALL if s.path == snippet.path]
    position = same_file.index(snippet)
    done, namespace = _namespaces.get(snippet.path, (0, {"__name__": "__snippet__"}))
    # Earlier blocks of this file first (each at most once per session), in order.
    for earlier in same_file[done:position]:
        if snippet.path in _failed:
            break
        if _no_run_reason(earlier) is None:
            try:
                _run(earlier, namespace)
            except Exception:  # reported by the earlier block's own test
                _failed[snippet.path] = earlier.id
        done += 1
    _namespaces[snippet.path] = (done, namespace)
    if snippet.path in _failed:
        pytest.skip(f"an earlier block of this file failed: {_failed[snippet.path]}")
    reason = _no_run_reason(snippet)
    if reason is not None:
        pytest.skip(f"snippet marked no-run: {reason}")
    try:
        _run(snippet, namespace)
    except BaseException:
        _failed[snippet.path] = snippet.id
        raise
    finally:
        _namespaces[snippet.path] = (position + 1, namespace)


def test_extraction_finds_the_cards_and_reports_card_lines(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(
        "# t\n\n```python\nx = 1\n```\n\n```text\nnot code\n```\n\n  ```py\n  y = x + 1\n  ```\n"
        "````python\n```\nstill code\n````\n",
        encoding="utf-8",
    )
    found = extract_snippets(card)
    assert [(s.line, s.code) for s in found] == [
        (4, "x = 1\n"), (12, "y = x + 1\n"), (15, "```\nstill code\n")]
    ids = {s.id.split(":")[0] for s in ALL}
    assert "src/adaptlearn/selection/README.md" in ids
