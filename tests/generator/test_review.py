"""Review: candidates table, diffs, and the self-contained HTML page (parsed in Python; in headless
Chromium when it is installed)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tfcaf.approval import approve
from tfcaf.generator import review
from tfcaf.generator.rundir import RunDir


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.tags: list[str] = []
        self.rows: list[dict] = []
        self._stack: list[str | None] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-cid" in attrs:
            self.rows.append({"cid": attrs["data-cid"], "class": attrs.get("class", "")})
        self._stack.append(attrs.get("id"))
        assert "src" not in attrs, f"external resource in the page: {tag} {attrs}"
        assert attrs.get("href") is None or attrs["href"].startswith("#"), f"external link: {tag} {attrs}"

    def handle_endtag(self, tag):
        if self._stack:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        for ident in self._stack:
            if ident:
                self.ids[ident] = self.ids.get(ident, "") + data


def test_rows_mark_the_selected_and_rejected(real_run):
    store, summary = real_run
    rows = review.candidate_rows(RunDir(Path(summary["run_dir"])))
    assert [r["cid"] for r in rows] == ["r0-c0-a0", "r0-c0-a1", "r0-c1-a0"]
    assert rows[0]["verdict"] == "rejected" and rows[0]["reason"]
    assert sum(r["selected"] for r in rows) == 1


def test_diff_against_vdn_then_against_the_approved(real_run, tmp_path):
    store, summary = real_run
    run = RunDir(Path(summary["run_dir"]))
    label, base = review.baseline("matrix_climbing", tmp_path)
    assert label == "baseline:vdn" and "torch.sum(agents_q" in base
    approve(run.path, "r0-c1-a0", "mine", tmp_path)
    label, base = review.baseline("matrix_climbing", tmp_path)
    assert label == "approved:mine" and base == run.source("r0-c1-a0")
    text = review.unified(run.source("r0-c0-a1"), run.source("r0-c1-a0"), "a", "b")
    assert text.startswith("--- a") and "+    return 0.5 * agents_q[:, 0:1]" in text


def test_html_page_is_self_contained_and_shows_the_run(real_run, tmp_path):
    store, summary = real_run
    run = RunDir(Path(summary["run_dir"]))
    path = review.write_html(run, tmp_path / "review.html", store=tmp_path)
    page = _Page()
    page.feed(path.read_text())
    assert "script" not in page.tags
    assert [r["cid"] for r in page.rows] == ["r0-c0-a0", "r0-c0-a1", "r0-c1-a0"]
    assert page.ids["selected"] == summary["selected"] and page.ids["accepted"] == "2"
    weights = page.ids["weights"]
    assert "agent 0" in weights and "agent 1" in weights
    assert "state_dependence" in page.ids["properties"]
    # the hostile comment is shown as text, escaped, never as markup
    assert "Content-Security-Policy" in path.read_text()


def test_graph_weights_come_from_the_graph(real_run):
    store, summary = real_run
    run = RunDir(Path(summary["run_dir"]))
    verdict = run.verdict("r0-c1-a0")
    from tfcaf.tasks.registry import get_card

    weights = review.graph_weights(verdict["graph"], get_card("matrix_climbing"), n=3)
    assert weights == [[0.5, 1.5]] * 3


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (scripts/setup.sh --test installs it)")
def test_html_page_in_headless_chromium(real_run, tmp_path):
    store, summary = real_run
    path = review.write_html(RunDir(Path(summary["run_dir"])), tmp_path / "review.html", store=tmp_path)
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    page = _Page()
    page.feed(out.stdout)
    assert page.ids.get("selected") == summary["selected"]
    assert [r["cid"] for r in page.rows] == ["r0-c0-a0", "r0-c0-a1", "r0-c1-a0"]
    assert "agent 1" in page.ids["weights"]
