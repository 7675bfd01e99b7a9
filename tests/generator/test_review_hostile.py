"""Review, vet and approve show hostile store/LLM text inert: no control sequence, no markup, no crash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tfcaf.cli import main

HOSTILE = "\x1b[2J\x1b]8;;https://evil.example\x07[bold green]accepted[/bold green] [/x] \u202eevil"


import pytest


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no folding: the assertions look for whole strings


def _hostile_copy(real_run, tmp_path: Path) -> tuple[Path, str]:
    store, summary = real_run
    src = Path(summary["run_dir"])
    store2 = tmp_path / "store"
    dst = store2 / "runs" / src.parent.name / src.name
    shutil.copytree(src, dst)
    events = [json.loads(line) for line in (dst / "events.jsonl").read_text().splitlines() if line.strip()]
    for e in events:
        if e.get("type") == "candidate" and e.get("verdict") == "rejected":
            e["reasons"] = [HOSTILE]
    (dst / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    sel = summary["selected"]
    source = dst / "candidates" / sel / "source.py"
    source.write_text(source.read_text() + "# note\x0cq = agents_q[:, 1:].sum(-1, keepdim=True)\n")
    return store2, src.name


def _assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\x0c" not in text, repr(text)


def test_review_table_and_diff_are_inert_and_html_is_written(real_run, tmp_path, capsys):
    store, run_id = _hostile_copy(real_run, tmp_path)
    page = tmp_path / "r.html"
    code = main(["review", run_id, "--store", str(store), "--html", str(page)])
    out, err = capsys.readouterr()
    assert code == 0, err
    _assert_inert(out + err)
    assert "[/x]" in out and "[bold green]accepted" in out  # shown as text, not interpreted
    assert "\\x1b" in out  # the escape is visible
    assert "\\x0cq = agents_q" in out  # the form feed stays on the comment's line, visibly
    html = page.read_text()
    _assert_inert(html)
    assert "#&nbsp;note\\x0cq&nbsp;=&nbsp;agents_q" in html  # on one line, visibly


def test_review_survives_a_renderer_failure(real_run, tmp_path, capsys, monkeypatch):
    from tfcaf.generator import review

    store, run_id = _hostile_copy(real_run, tmp_path)

    def boom(*a, **k):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(review, "_print_rich", boom)
    page = tmp_path / "r.html"
    assert main(["review", run_id, "--store", str(store), "--html", str(page)]) == 0
    out, _ = capsys.readouterr()
    assert "plain text follows" in out and "[/x]" in out
    _assert_inert(out)
    assert page.is_file()


def test_approve_error_with_hostile_reason_is_one_inert_line(real_run, tmp_path, capsys):
    store, run_id = _hostile_copy(real_run, tmp_path)
    run_dir = next((store / "runs").glob(f"*/{run_id}"))
    rejected = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
    cid = next(e["cid"] for e in rejected if e.get("type") == "candidate" and e.get("verdict") == "rejected")
    verdict = json.loads((run_dir / "candidates" / cid / "verdict.json").read_text())
    verdict["reasons"] = [HOSTILE]
    (run_dir / "candidates" / cid / "verdict.json").write_text(json.dumps(verdict))
    code = main(["approve", f"{run_id}:{cid}", "--store", str(store), "--name", "x"])
    out, err = capsys.readouterr()
    assert code == 1
    _assert_inert(out + err)
    assert err.count("\n") == 1 and err.startswith("tfcaf: error:")
