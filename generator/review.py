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
from tfcaf.errors import UsageError
from tfcaf.rundir import RunDir

VDN_BASELINE = VDN_SOURCE

_METRICS = ("state_dependence", "dead_agent_credit", "vdn_distance", "mono_min_grad")


def candidate_rows(rundir: RunDir) -> list[dict[str, Any]]:
    """One row per candidate, in generation order."""
    selected = rundir.selected()
    rows = []
    for cid, e in rundir.candidates().items():
        critique = e.get("critique") or {}
        rows.append({
            "cid": cid, "round": e.get("round"), "slot": e.get("slot"), "attempt": e.get("attempt"),
            "verdict": e.get("verdict"), "status": e.get("status"), "stage": e.get("stage"),
            "reason": (e.get("reasons") or [""])[0], "score": (e.get("score") or {}).get("total"),
            "judge": critique.get("mean"), "advice": critique.get("advice"), "selected": cid == selected,
            "metrics": {k: (e.get("metrics") or {}).get(k) for k in _METRICS if k in (e.get("metrics") or {})},
        })
    return rows


def baseline(task: str, store: Path | None) -> tuple[str, str]:
    """(label, source) of the task's latest approved function, else VDN."""
    from tfcaf.approval import list_approved
    from tfcaf.store import store_dir

    items = [m for m in list_approved(store) if m.get("task") == task]
    if items:
        latest = max(items, key=lambda m: str(m.get("approved_at")))
        path = store_dir(store) / "approved" / str(latest["name"]) / "source.py"
        if path.is_file():
            return f"approved:{latest['name']}", path.read_text(encoding="utf-8")
    return "baseline:vdn", VDN_BASELINE


def unified(a: str, b: str, a_label: str, b_label: str) -> str:
    """A unified diff of two sources ('' when equal)."""
    return "".join(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                        fromfile=a_label, tofile=b_label, n=3))


def _source(rundir: RunDir, cid: str) -> str:
    src = rundir.source(cid)
    if src is None:
        if cid not in rundir.candidates():
            known = ", ".join(rundir.candidates()) or "none"
            raise UsageError(f"run {rundir.run_id} has no candidate '{cid}'. Candidates: {known}.")
        return f"# candidate {cid} produced no source (rejected at the text gate)\n"
    return src


def print_review(rundir: RunDir, diff: tuple[str, str] | None = None, store: Path | None = None) -> None:
    """Print the candidates table and a coloured diff (selected vs baseline, or `diff` = (A, B))."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    con = Console()
    rows = candidate_rows(rundir)
    table = Table(title=f"run {rundir.task}/{rundir.run_id}")
    for col in ("candidate", "verdict", "status", "score", "judge", "reason / advice"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = "bold green" if r["selected"] else ("green" if r["verdict"] == "accepted" else "red")
        note = r["reason"] or (r["advice"] or "")
        table.add_row(("* " if r["selected"] else "") + r["cid"], str(r["verdict"]), str(r["status"]),
                      "" if r["score"] is None else f"{r['score']:.3f}", "" if r["judge"] is None else f"{r['judge']:.2f}",
                      note[:160], style=style)
    con.print(table)
    if diff:
        a, b = diff
        label, text = a, unified(_source(rundir, a), _source(rundir, b), a, b)
    else:
        b = rundir.selected()
        if b is None:
            con.print("no candidate was selected (none accepted); compare two with --diff A B")
            return
        label, base = baseline(rundir.task, store)
        text = unified(base, _source(rundir, b), label, b)
    con.print(f"[bold]diff {label} -> {b}[/]", highlight=False)
    con.print(Syntax(text or "(identical)\n", "diff", theme="ansi_dark", background_color="default", word_wrap=True))


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
    q_tot = module(agents_q, states)  # [n, 1]
    (grad,) = torch.autograd.grad(q_tot.sum(), agents_q)  # [n, N]
    return [[round(float(v), 4) for v in row] for row in grad]


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}th{background:#f0f0f0}
tr.accepted td.v{color:#176317;font-weight:bold}tr.rejected td.v{color:#a11}tr.sel{background:#eaf6ea}
table.diff{font-family:monospace;font-size:12px}.diff_add{background:#cfc}.diff_chg{background:#ffa}.diff_sub{background:#fcc}
pre{background:#f7f7f7;padding:.5em;overflow:auto}"""


def render_html(rundir: RunDir, store: Path | None = None) -> str:
    """The self-contained review page (inline CSS, no scripts, no external resources)."""
    from tfcaf.tasks.registry import get_card

    e = html.escape
    card = get_card(rundir.task)
    rows = candidate_rows(rundir)
    chosen = rundir.selected()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
             f"<title>tfcaf review {e(rundir.run_id)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Run {e(rundir.task)}/{e(rundir.run_id)}</h1>"]
    summary_path = rundir.path / "summary.json"
    if summary_path.is_file():
        s = json.loads(summary_path.read_text(encoding="utf-8"))
        parts.append(f"<p id='summary'>backend {e(str(s.get('backend')))}:{e(str(s.get('model')))}, mode {e(str(s.get('mode')))}; "
                     f"candidates {s.get('candidates')}, accepted <b id='accepted'>{s.get('accepted')}</b>, "
                     f"LLM calls {s.get('llm_calls')}, tokens {(s.get('tokens') or {}).get('total')}</p>")
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
        table = difflib.HtmlDiff(wrapcolumn=72).make_table(base.splitlines(), src.splitlines(), e(label), e(chosen))
        parts.append(f"<h2>Selected: <span id='selected'>{e(chosen)}</span> vs {e(label)}</h2>{table}")
        verdict = rundir.verdict(chosen) or {}
        parts.append("<h3>Property results</h3><table id='properties'><tr><th>metric</th><th>value</th></tr>")
        for k, v in sorted((verdict.get("metrics") or {}).items()):
            if isinstance(v, (int, float, str, bool)):
                parts.append(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>")
        parts.append("</table>")
        if isinstance(verdict.get("graph"), dict):
            weights = graph_weights(verdict["graph"], card)
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
            verdict = rundir.verdict(r["cid"]) or {}
            reasons = "<br>".join(e(str(x)) for x in verdict.get("reasons") or [])
            parts.append(f"<details><summary>{e(r['cid'])}: {e(str(r['status']))}</summary><p>{reasons}</p>"
                         f"<pre>{e(rundir.source(r['cid']) or '')}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def write_html(rundir: RunDir, path: Path, store: Path | None = None) -> Path:
    path = Path(path)
    try:
        path.write_text(render_html(rundir, store), encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    return path
