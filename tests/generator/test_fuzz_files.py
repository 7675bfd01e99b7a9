"""Every verb's file inputs under fuzzing: random bytes, truncated JSON, wrong JSON types, NaN literals,
deep nesting. Each answer is an exit code from the documented set and at most a line or two on stderr,
never a traceback (an unexpected exception escapes `tfcaf.cli.main` and fails the test).

Examples: FUZZ_EXAMPLES per target file below (16 targets x 30 = 480), bounded so this runs in well
under a minute on a 2-core CPU."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfcaf.cli import main

FUZZ_EXAMPLES = 30

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)


def _content(original: bytes):
    """Strategies for a hostile replacement of a file whose good content is `original`."""
    return st.one_of(
        st.binary(max_size=200),
        st.integers(min_value=0, max_value=max(0, len(original.rstrip()) - 1)).map(lambda n: original[:n]),  # truncated (by more than trailing whitespace, which leaves the file valid)
        _JSON.map(lambda v: json.dumps(v).encode()),  # wrong JSON types
        st.sampled_from([b'{"a": NaN}', b"[Infinity]", b'{"x": 1e999}', b"[" * 200_000, b"\xef\xbb\xbf{}",
                         b"null", b"[]", b'"text"', b"0"]),
        st.text(max_size=60).map(lambda t: t.encode("utf-8")),
    )


@pytest.fixture(scope="module")
def base_store(real_run, tmp_path_factory):
    """A store with the real run, one approved function and a hand-made training run."""
    from tfcaf.approval import approve

    store, summary = real_run
    root = tmp_path_factory.mktemp("fuzzstore")
    run_src = Path(summary["run_dir"])
    run_dst = root / "runs" / run_src.parent.name / run_src.name
    shutil.copytree(run_src, run_dst)
    approve(run_dst, summary["selected"], "fz", root)
    train = root / "train" / "matrix_climbing" / "T1"
    train.mkdir(parents=True)
    (train / "config.json").write_text(json.dumps({"config": {}}))
    (train / "provenance.json").write_text(json.dumps({"task": "matrix_climbing", "mixer": "vdn", "seed": 0,
                                                       "device": "cpu", "mixer_hashes": {}}))
    (train / "metrics.jsonl").write_text(json.dumps({"kind": "test", "env_steps": 100, "test_return_mean": 1.0}) + "\n")
    (train / "status.json").write_text(json.dumps({"status": "done"}))
    return root, run_dst, summary


def _targets():
    run = "runs/matrix_climbing/{run}"
    sel = run + "/candidates/{sel}"
    rej = run + "/candidates/r0-c0-a0"
    return [
        ("review", run + "/events.jsonl", (0, 1)), ("review", sel + "/verdict.json", (0, 1)),
        ("review", sel + "/source.py", (0, 1)), ("review", run + "/summary.json", (0, 1)),
        ("review", "approved/fz/source.py", (0, 1)),
        ("approve", sel + "/verdict.json", (1, 2)), ("approve", rej + "/source.py", (1, 2)),
        ("approve", run + "/config.json", (0, 1, 2)),  # optional: an empty object is fine
        ("approved", "approved/fz/manifest.json", (0,)),
        ("train", "approved/fz/manifest.json", (1, 2)), ("train", "approved/fz/graph.json", (1, 2)),
        ("report", "train/matrix_climbing/T1/provenance.json", (0, 1, 2)),
        ("report", "train/matrix_climbing/T1/metrics.jsonl", (0, 1, 2)),
        ("generate", run + "/config.json", (1, 2)),
        ("vet", sel + "/response.txt", (1, 2)),
        ("train-resume", "train/matrix_climbing/T1/provenance.json", (1, 2)),
    ]


TARGETS = _targets()


def _argv(verb: str, root: Path, summary: dict, tmp: Path) -> list[str]:
    s = ["--store", str(root)]
    return {
        "review": ["review", summary["run_id"], *s, "--html", str(tmp / "r.html")],
        "approve": ["approve", f"{summary['run_id']}:{summary['selected']}", "--name", "fz2", "--force", *s],
        "approved": ["approved", *s],
        "train": ["train", "--task", "matrix_climbing", "--mixer", "tfcaf:fz", "--steps", "1", *s],
        "report": ["report", str(root / "train"), "--out", str(tmp / "rep")],
        "generate": ["generate", "--resume", summary["run_id"], *s],
        "vet": ["vet", "--task", "matrix_climbing", str(root / "runs" / "matrix_climbing" / summary["run_id"] / "candidates"
                                                        / summary["selected"] / "response.txt")],
        "train-resume": ["train", "--resume", "T1", *s],
    }[verb]


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("verb,rel,codes", TARGETS, ids=[f"{v}-{r.split('/')[-1]}-{i}" for i, (v, r, _) in enumerate(TARGETS)])
def test_verb_answers_a_malformed_file_with_one_line(base_store, tmp_path, verb, rel, codes):
    root, run_dir, summary = base_store
    path = root / rel.format(run=summary["run_id"], sel=summary["selected"])
    if verb == "approve" and "r0-c0-a0" in rel:
        argv = ["approve", f"{summary['run_id']}:r0-c0-a0", "--name", "fz3", "--store", str(root)]
    else:
        argv = _argv(verb, root, summary, tmp_path)
    original = path.read_bytes()
    seen = {"n": 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(_content(original))
    def check(content: bytes) -> None:
        seen["n"] += 1
        path.write_bytes(content)
        try:
            code, out, err = _run(argv)
        finally:
            path.write_bytes(original)
        assert code in codes, (content[:80], code, err)
        assert "Traceback" not in out + err
        assert err.count("tfcaf: error:") <= 1 and len(err.splitlines()) <= 3, err
        assert "\x1b" not in out + err and "\x00" not in out + err

    check()
    print(f"fuzz {verb} {rel.split('/')[-1]}: {seen['n']} examples")
    assert seen["n"] >= min(FUZZ_EXAMPLES, 10)
