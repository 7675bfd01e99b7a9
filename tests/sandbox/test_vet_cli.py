"""`tfcaf vet`: exit codes 0 / 1 / 2 / 3, one clear line for usage errors, --json output."""

from __future__ import annotations

import json

import pytest

from tfcaf.cli import main

VDN = "import torch\ndef QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(dim=-1, keepdim=True)\n"


def test_accepted_json_and_graph_out(tmp_path, capsys) -> None:
    f = tmp_path / "vdn.py"
    f.write_text(VDN)
    out_graph = tmp_path / "g.json"
    assert main(["vet", "--task", "matrix_climbing", str(f), "--json", "--graph-out", str(out_graph), "--examples", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "accepted" and data["reasons"] and "graph" not in data
    from tfcaf.sandbox.graph import graph_digest, load_graph

    graph = json.loads(out_graph.read_text())
    load_graph(graph)
    assert data["metrics"]["graph_sha256"] == graph_digest(graph)


def test_rejected_exit_1_human_output(tmp_path, capsys) -> None:
    f = tmp_path / "resp.md"
    f.write_text("Sure:\n```python\nimport os\n" + VDN + "```\n")
    assert main(["vet", "--task", "matrix_climbing", str(f)]) == 1
    out = capsys.readouterr().out
    assert "rejected" in out and "escape" in out


@pytest.mark.parametrize("content,needle", [
    (None, "not found"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"   \n", "empty"),
    (b"#" * 300_000, "limit"),
])
def test_usage_errors_exit_2(tmp_path, capsys, content, needle) -> None:
    f = tmp_path / "cand.py"
    if content is not None:
        f.write_bytes(content)
    assert main(["vet", "--task", "matrix_climbing", str(f)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_task_and_directory(tmp_path, capsys) -> None:
    f = tmp_path / "x.py"
    f.write_text(VDN)
    assert main(["vet", "--task", "nope", str(f)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["vet", "--task", "matrix_climbing", str(tmp_path)]) == 2


def test_missing_task_option_is_usage(tmp_path) -> None:
    f = tmp_path / "x.py"
    f.write_text(VDN)
    assert main(["vet", str(f)]) == 2
