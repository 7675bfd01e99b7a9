"""The attacks of issue 12 through the real command line: a hostile OpenAI-compatible endpoint on
127.0.0.1 (started here) serves the answers to `tfcaf generate`; then `review`, `approve`, `vet` and
`approved` must show everything inert, exit with a documented code, and never print a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator"))
from fake_server import FakeServer, completion_body  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-do-not-send"
ESC = "\\x1b[2J\\x1b]8;;https://evil.example\\x07[bold green]accepted[/bold green] [/x]"  # as written in source

ANSWERS = [
    # an assert message with a clear-screen, an OSC-8 link and markup that would crash Rich
    f'```python\nimport torch\n\n\ndef QLLMNetwork(agents_q, global_state):\n'
    f'    assert agents_q.shape[1] > 99, "{ESC}"\n    return agents_q.sum(dim=-1, keepdim=True)\n```\n',
    # a Cyrillic x beside a Latin x
    '```python\nimport torch\n\n\ndef QLLMNetwork(agents_q, global_state):\n    x = agents_q * 50.0\n'
    '    \u0445 = x.clamp(-1.0, 1.0)\n    return x.sum(dim=-1, keepdim=True)\n```\n',
    # valid; markup and a bidi-looking comment in plain text
    '```python\nimport torch\n\n\ndef QLLMNetwork(agents_q, global_state):\n    # [bold green]accepted[/bold green] [/x] \u2192 VDN\n'
    '    return agents_q.sum(dim=-1, keepdim=True)  # [B, 1]\n```\n',
]


def _serve(n: int, body: dict):
    return 200, {}, completion_body(ANSWERS[(n - 1) % len(ANSWERS)])


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("TFCAF_STORE", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    return subprocess.run([sys.executable, "-m", "tfcaf.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=str(cwd), env={**base, "PYTHONPATH": str(ROOT), "HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd / ".config"),
                                             "OPENAI_API_KEY": SECRET, "COLUMNS": "300", **(env or {})})


def _assert_clean(out: subprocess.CompletedProcess) -> None:
    text = out.stdout + out.stderr
    assert "Traceback" not in text, text
    for bad in ("\x1b", "\x07", "\u202e", "\x0c", "\x9b"):
        assert bad not in text, (bad, text)


def _generate(tmp: Path, srv: FakeServer, *extra: str, toml: bool = True) -> subprocess.CompletedProcess:
    if toml:  # what a cloned repository could carry
        (tmp / "tfcaf.toml").write_text(f'[generate]\nbackend = "openai"\nbase_url = "{srv.base_url}"\nmodel = "hostile"\n')
    return _cli("generate", "--task", "matrix_climbing", "--backend", "openai", "--model", "hostile", "--mode", "code",
                "--rounds", "1", "--repairs", "0", "--no-critic", "--no-cache", "--store", str(tmp / "store"),
                "--json", *extra, cwd=tmp)


@pytest.mark.slow
def test_hostile_endpoint_through_generate_review_approve_vet(tmp_path):
    with FakeServer(_serve) as srv:
        out = _generate(tmp_path, srv, "-k", "3")
    _assert_clean(out)
    assert out.returncode == 0, out.stderr
    # the endpoint came from ./tfcaf.toml: the key stayed home
    assert srv.headers and all(SECRET not in h.get("authorization", "") for h in srv.headers)
    assert "not sending $OPENAI_API_KEY" in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    run_id, store = summary["run_id"], str(tmp_path / "store")

    page = tmp_path / "review.html"
    out = _cli("review", run_id, "--store", store, "--html", str(page), cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 0 and page.is_file()
    assert "[/x]" in out.stdout and "\\x1b" in out.stdout  # shown, escaped, not interpreted
    html = page.read_text()
    assert "\x1b" not in html and "<script" not in html.lower()

    rows = json.loads(_cli("review", run_id, "--store", store, "--json", cwd=tmp_path).stdout)
    status = {r["cid"]: (r["verdict"], r["status"]) for r in rows}
    assert list(status.values()) == [("rejected", "runtime"), ("rejected", "text"), ("accepted", "ok")]
    assert "ASCII" in rows[1]["reason"]
    for cid in (rows[0]["cid"], rows[1]["cid"]):
        out = _cli("approve", f"{run_id}:{cid}", "--store", store, "--name", "x", cwd=tmp_path)
        _assert_clean(out)
        assert out.returncode == 1 and out.stderr.count("\n") == 1 and out.stderr.startswith("tfcaf: error:")
    out = _cli("approve", f"{run_id}:{rows[2]['cid']}", "--store", store, "--name", "ok\n", cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 2
    out = _cli("approve", f"{run_id}:{rows[2]['cid']}", "--store", store, "--name", "good", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _cli("approved", "--store", store, cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 0 and "good" in out.stdout

    response = next((tmp_path / "store").glob(f"runs/*/{run_id}/candidates/{rows[0]['cid']}/response.txt"))
    out = _cli("vet", "--task", "matrix_climbing", str(response), cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 1 and "[/x]" in out.stdout


@pytest.mark.parametrize("how", ["flag", "trusted"])
def test_key_goes_only_where_the_user_sent_it(tmp_path, how):
    with FakeServer(lambda n, body: (200, {}, completion_body(ANSWERS[2]))) as srv:
        if how == "flag":
            out = _generate(tmp_path, srv, "-k", "1", "--base-url", srv.base_url)
        else:  # approved once in the user's own config
            cfg = tmp_path / ".config" / "tfcaf"
            cfg.mkdir(parents=True)
            (cfg / "config.toml").write_text(f'[secrets]\ntrusted_base_urls = ["{srv.base_url}"]\n')
            out = _generate(tmp_path, srv, "-k", "1")
    _assert_clean(out)
    assert out.returncode == 0, out.stderr
    assert srv.headers and all(h.get("authorization") == f"Bearer {SECRET}" for h in srv.headers)


def test_explicit_config_file_is_the_users_choice(tmp_path):
    with FakeServer(lambda n, body: (200, {}, completion_body(ANSWERS[2]))) as srv:
        cfg = tmp_path / "mine.toml"
        cfg.write_text(f'[generate]\nbase_url = "{srv.base_url}"\n')
        out = _generate(tmp_path, srv, "-k", "1", "--config", str(cfg), toml=False)
    assert out.returncode == 0, out.stderr
    assert all(h.get("authorization") == f"Bearer {SECRET}" for h in srv.headers)


def test_auto_config_cannot_set_the_derived_field(tmp_path):
    (tmp_path / "tfcaf.toml").write_text('[generate]\nsend_api_key = true\n')
    out = _cli("generate", "--task", "matrix_climbing", "--show-config", cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 2 and "unknown setting" in out.stderr


@pytest.mark.parametrize("flag,value", [("--timeout-s", "nan"), ("--temperature", "inf"), ("--time-budget-s", "-inf"),
                                        ("--price-prompt", "nan")])
def test_non_finite_flags_are_usage_errors(tmp_path, flag, value):
    out = _cli("generate", "--task", "matrix_climbing", flag, value, "--show-config", cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 2 and "finite" in out.stderr and out.stderr.count("\n") == 1


@pytest.mark.parametrize("verb", [["review", "x"], ["approved"], ["approve", "r:c"], ["train", "--task", "matrix_climbing", "--mixer", "tfcaf:x"]])
def test_store_pointing_at_a_file_is_one_line(tmp_path, verb):
    not_a_dir = tmp_path / "store.txt"
    not_a_dir.write_text("x")
    out = _cli(*verb, "--store", str(not_a_dir), cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 2 and "is not a directory" in out.stderr and out.stderr.count("\n") == 1


def test_binary_generate_config_is_one_line(tmp_path):
    (tmp_path / "tfcaf.toml").write_bytes(b"\xff\xfe\x00[generate]")
    out = _cli("generate", "--task", "matrix_climbing", "--show-config", cwd=tmp_path)
    _assert_clean(out)
    assert out.returncode == 2 and "not UTF-8" in out.stderr
