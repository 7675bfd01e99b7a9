"""Review a generate run: candidates with verdicts and scores, coloured unified diffs, an HTML page.

The baseline of a diff is the task's most recently approved function, or VDN when none is approved.
Per-agent weights on sample states come from the candidate's compiled GRAPH, rebuilt by the sandbox's
trusted `load_graph` (w_i = dQ_tot/dQ_i at Q = 0): review never runs candidate Python. Every piece of
LLM text on the HTML page is escaped, and the page carries a Content-Security-Policy that forbids
scripts, so a hostile candidate cannot run anything in the reviewer's browser.

    print_review(RunDir.open(store, "RUN"))
    write_html(RunDir.open(store, "RUN"), Path("review.html"))
"""

from __future__ import annotations

import difflib
import html
import json
import math
from pathlib import Path
from typing import Any

from tfcaf.contract import VDN_SOURCE
from tfcaf.errors import RejectedError, TfcafError, UsageError
from tfcaf.rundir import RunDir

VDN_BASELINE = VDN_SOURCE

_METRICS = ("state_dependence", "dead_agent_credit", "vdn_distance", "mono_min_grad")


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else ("" if value is None or isinstance(value, list) else value)


def _get(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


def candidate_rows(rundir: RunDir) -> list[dict[str, Any]]:
    """One row per candidate, in generation order (store values kept as they are: display makes them inert)."""
    selected = rundir.selected()
    rows = []
    for cid, e in rundir.candidates().items():
        metrics = e.get("metrics") if isinstance(e.get("metrics"), dict) else {}
        rows.append({
            "cid": cid, "round": e.get("round"), "slot": e.get("slot"), "attempt": e.get("attempt"),
            "verdict": e.get("verdict"), "status": e.get("status"), "stage": e.get("stage"),
            "reason": _first(e.get("reasons")), "score": _get(e.get("score"), "total"),
            "judge": _get(e.get("critique"), "mean"), "advice": _get(e.get("critique"), "advice"), "selected": cid == selected,
            "metrics": {k: metrics.get(k) for k in _METRICS if k in metrics},
        })
    return rows


def baseline(task: str, store: Path | None) -> tuple[str, str]:
    """(label, source) of the task's latest approved function, else VDN."""
    from tfcaf.approval import list_approved
    from tfcaf.store import store_dir

    from tfcaf.files import read_text

    items = [m for m in list_approved(store) if m.get("task") == task]
    if items:
        latest = max(items, key=lambda m: str(m.get("approved_at")))
        path = store_dir(store) / "approved" / str(latest["name"]) / "source.py"
        try:
            return f"approved:{latest['name']}", read_text(path, "approved source", follow_symlinks=False)
        except TfcafError:  # unreadable or forged: diff against VDN and say so in the label
            return f"baseline:vdn (approved:{latest['name']} is unreadable)", VDN_BASELINE
    return "baseline:vdn", VDN_BASELINE


def unified(a: str, b: str, a_label: str, b_label: str) -> str:
    """A unified diff of two sources ('' when equal), lines split where Python splits them and made
    inert (a form feed or U+2028 shows as an escape on its own line, never as a new line)."""
    from tfcaf.display import inert, source_lines

    return "\n".join(difflib.unified_diff(source_lines(a), source_lines(b), fromfile=inert(a_label),
                                          tofile=inert(b_label), n=3, lineterm=""))


def _verdict(rundir: RunDir, cid: str) -> dict[str, Any]:
    """The candidate's verdict, or {} with the reason when its file is malformed (the review goes on)."""
    try:
        return rundir.verdict(cid) or {}
    except TfcafError as err:
        return {"reasons": [f"unreadable verdict: {err}"]}


def _source(rundir: RunDir, cid: str) -> str:
    try:
        src = rundir.source(cid)
    except TfcafError as err:  # binary or oversized source.py: show why instead of the code
        return f"# candidate {cid}: {err}\n"
    if src is None:
        if cid not in rundir.candidates():
            known = ", ".join(rundir.candidates()) or "none"
            raise UsageError(f"run {rundir.run_id} has no candidate '{cid}'. Candidates: {known}.")
        return f"# candidate {cid} produced no source (rejected at the text gate)\n"
    return src


def print_review(rundir: RunDir, diff: tuple[str, str] | None = None, store: Path | None = None) -> None:
    """Print the candidates table and a coloured diff (selected vs baseline, or `diff` = (A, B)).

    Every cell and diff line is inert text (no markup parsed, control characters escaped); if Rich
    still cannot render something, the same content is printed as plain escaped text instead."""
    from rich.console import Console

    rows = candidate_rows(rundir)
    if diff:
        a, b = diff
        label, text = a, unified(_source(rundir, a), _source(rundir, b), a, b)
    else:
        b = rundir.selected()
        label, text = None, None
        if b is not None:
            label, base = baseline(rundir.task, store)
            text = unified(base, _source(rundir, b), label, b)
    con = Console(highlight=False)
    try:
        _print_rich(con, rundir, rows, label, b, text)
    except Exception as err:  # never crash the review on what a candidate wrote: degrade to plain text
        from tfcaf.display import inert

        print(f"(rich rendering failed: {inert(type(err).__name__)}; plain text follows)")
        _print_plain(rundir, rows, label, b, text)


def _note(r: dict[str, Any]) -> str:
    from tfcaf.display import inert

    return inert(r["reason"] or r["advice"] or "")[:160]


def _print_rich(con: Any, rundir: RunDir, rows: list[dict[str, Any]], label: str | None, b: str | None,
                text: str | None) -> None:
    from rich.syntax import Syntax
    from rich.table import Table

    from tfcaf.display import inert_text

    table = Table(title=inert_text(f"run {rundir.task}/{rundir.run_id}"))
    for col in ("candidate", "verdict", "status", "score", "judge", "reason / advice"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = "bold green" if r["selected"] else ("green" if r["verdict"] == "accepted" else "red")
        cells = [("* " if r["selected"] else "") + str(r["cid"]), r["verdict"], r["status"], _fmt(r["score"], 3),
                 _fmt(r["judge"], 2), _note(r)]
        table.add_row(*(inert_text(c) for c in cells), style=style)
    con.print(table)
    if b is None:
        con.print(inert_text("no candidate was selected (none accepted); compare two with --diff A B"))
        return
    con.print(inert_text(f"diff {label} -> {b}", "bold"))
    con.print(Syntax(text or "(identical)\n", "diff", theme="ansi_dark", background_color="default", word_wrap=True))


def _print_plain(rundir: RunDir, rows: list[dict[str, Any]], label: str | None, b: str | None, text: str | None) -> None:
    from tfcaf.display import inert

    print(inert(f"run {rundir.task}/{rundir.run_id}"))
    for r in rows:
        print(inert(f"{'* ' if r['selected'] else ''}{r['cid']}  {r['verdict']}  {r['status']}  "
                    f"{_fmt(r['score'], 3)}  {_fmt(r['judge'], 2)}  {_note(r)}"))
    if b is None:
        print("no candidate was selected (none accepted); compare two with --diff A B")
        return
    print(inert(f"diff {label} -> {b}"))
    print(text or "(identical)")  # already inert line by line (unified)


def sample_states(card: Any, n: int = 4, seed: int = 0) -> "Any":
    """[n, S] states drawn uniformly inside the card's declared column ranges (infinite bounds -> +-1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    low = torch.tensor([v if math.isfinite(v) else -1.0 for v in card.state_low])
    high = torch.tensor([v if math.isfinite(v) else 1.0 for v in card.state_high])
    states = low + (high - low) * torch.rand(n, card.state_dim, generator=gen)  # [n, S]
    if card.alive is not None and n > 1:  # show one state with agent 0 dead
        states[1, card.alive.columns[0]] = card.alive.threshold
    return states


def graph_weights(graph: dict, card: Any, n: int = 4, seed: int = 0) -> list[list[float]]:
    """Per-agent credit w_i = dQ_tot/dQ_i at Q = 0 on `n` sample states, from the trusted graph rebuild."""
    import torch

    from tfcaf.sandbox.graph import load_graph

    module = load_graph(graph, "cpu")
    states = sample_states(card, n, seed)  # [n, S]
    agents_q = torch.zeros(n, card.n_agents, requires_grad=True)  # [n, N]
    try:
        q_tot = module(agents_q, states)  # [n, 1]
        (grad,) = torch.autograd.grad(q_tot.sum(), agents_q)  # [n, N]
    except Exception as err:  # a forged graph that loads but fails (wrong shape, huge allocation, ...)
        raise RejectedError(f"the graph fails on sample states ({type(err).__name__})") from None
    return [[round(float(v), 4) for v in row] for row in grad]


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}th{background:#f0f0f0}
tr.accepted td.v{color:#176317;font-weight:bold}tr.rejected td.v{color:#a11}tr.sel{background:#eaf6ea}
table.diff{font-family:monospace;font-size:12px}.diff_add{background:#cfc}.diff_chg{background:#ffa}.diff_sub{background:#fcc}
pre{background:#f7f7f7;padding:.5em;overflow:auto}"""


def render_html(rundir: RunDir, store: Path | None = None) -> str:
    """The self-contained review page (inline CSS, no scripts, no external resources)."""
    from tfcaf.tasks.registry import get_card

    from tfcaf.display import inert, source_lines, source_text

    def e(value: Any) -> str:  # inert first (controls shown as escapes), then HTML-escaped
        return html.escape(inert(value))

    card = get_card(rundir.task)
    rows = candidate_rows(rundir)
    chosen = rundir.selected()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
             f"<title>tfcaf review {e(rundir.run_id)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Run {e(rundir.task)}/{e(rundir.run_id)}</h1>"]
    summary_path = rundir.path / "summary.json"
    if summary_path.is_file():
        try:
            s = rundir.read_json("summary.json")
        except TfcafError as err:  # a view of the events, never truth: say so and go on
            parts.append(f"<p id='summary-error'>{e(err)}</p>")
            s = {}
        parts.append(f"<p id='summary'>backend {e(s.get('backend'))}:{e(s.get('model'))}, mode {e(s.get('mode'))}; "
                     f"candidates {e(s.get('candidates'))}, accepted <b id='accepted'>{e(s.get('accepted'))}</b>, "
                     f"LLM calls {e(s.get('llm_calls'))}, tokens {e(_get(s.get('tokens'), 'total'))}</p>")
    parts.append("<h2>Candidates</h2><table id='candidates'><tr><th>candidate</th><th>verdict</th><th>status</th>"
                 "<th>stage</th><th>score</th><th>judge</th><th>properties</th><th>reason / advice</th></tr>")
    for r in rows:
        cls = ("accepted" if r["verdict"] == "accepted" else "rejected") + (" sel" if r["selected"] else "")
        metrics = ", ".join(f"{k}={v:.3g}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))
        parts.append(f"<tr class='{cls}' data-cid='{e(r['cid'])}'><td>{'&#9733; ' if r['selected'] else ''}{e(r['cid'])}</td>"
                     f"<td class='v'>{e(str(r['verdict']))}</td><td>{e(str(r['status']))}</td><td>{e(str(r['stage']))}</td>"
                     f"<td>{_fmt(r['score'], 3)}</td><td>{_fmt(r['judge'], 2)}</td><td>{e(metrics)}</td>"
                     f"<td>{e(r['reason'] or r['advice'] or '')}</td></tr>")
    parts.append("</table>")
    if chosen is not None:
        label, base = baseline(rundir.task, store)
        src = _source(rundir, chosen)
        # split where Python splits (never str.splitlines: it breaks on \x0c, \x1c, NEL, U+2028 too)
        table = difflib.HtmlDiff(wrapcolumn=72).make_table(_clip(source_lines(base)), _clip(source_lines(src)),
                                                           e(inert(label)), e(inert(chosen)))
        parts.append(f"<h2>Selected: <span id='selected'>{e(chosen)}</span> vs {e(label)}</h2>{table}")
        verdict = _verdict(rundir, chosen)
        parts.append("<h3>Property results</h3><table id='properties'><tr><th>metric</th><th>value</th></tr>")
        metrics = verdict.get("metrics") if isinstance(verdict.get("metrics"), dict) else {}
        for k, v in sorted(metrics.items()):
            if isinstance(v, (int, float, str, bool)):
                parts.append(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>")
        parts.append("</table>")
        weights = None
        if isinstance(verdict.get("graph"), dict):
            try:
                weights = graph_weights(verdict["graph"], card)
            except TfcafError as err:  # a forged graph: say so on the page instead of losing the page
                parts.append(f"<p id='weights-error'>the stored graph does not rebuild: {e(err)}</p>")
        if weights is not None:
            parts.append("<h3>Per-agent weights on sample states (dQ_tot/dQ_i, from the compiled graph)</h3>"
                         "<table id='weights'><tr><th>state</th>" +
                         "".join(f"<th>agent {i}</th>" for i in range(card.n_agents)) + "</tr>")
            for j, row in enumerate(weights):
                note = " (agent 0 dead)" if j == 1 and card.alive is not None else ""
                parts.append(f"<tr><td>sample {j}{note}</td>" + "".join(f"<td>{w:.4f}</td>" for w in row) + "</tr>")
            parts.append("</table>")
    parts.append("<h2>Rejected candidates</h2>")
    for r in rows:
        if r["verdict"] != "accepted":
            verdict = _verdict(rundir, r["cid"])
            raw = verdict.get("reasons") if isinstance(verdict.get("reasons"), list) else [verdict.get("reasons") or ""]
            reasons = "<br>".join(e(x) for x in raw)
            parts.append(f"<details><summary>{e(r['cid'])}: {e(str(r['status']))}</summary><p>{reasons}</p>"
                         f"<pre>{html.escape(source_text(_source(rundir, r['cid'])))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


MAX_LINE_CHARS = 2000
"""Longest source line shown in full on the page (the text gate allows 20 kB per candidate; a forged
store file may hold more): longer lines are cut with a visible marker."""


def _clip(lines: list[str]) -> list[str]:
    return [ln if len(ln) <= MAX_LINE_CHARS else f"{ln[:MAX_LINE_CHARS]} ... [{len(ln) - MAX_LINE_CHARS} more characters]"
            for ln in lines]


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return ""
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError, OverflowError):
        return "?"


def write_html(rundir: RunDir, path: Path, store: Path | None = None) -> Path:
    path = Path(path)
    try:
        page = render_html(rundir, store)
    except TfcafError:
        raise
    except Exception as err:  # never lose the page: a plain one says what could not be rendered
        from tfcaf.display import inert

        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
                f"content=\"default-src 'none'\"><title>tfcaf review</title></head><body><h1>Run {html.escape(inert(rundir.run_id))}</h1>"
                f"<p id='render-error'>the review page could not be rendered ({html.escape(type(err).__name__)}); "
                "see `tfcaf review --json`.</p></body></html>")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    return path
