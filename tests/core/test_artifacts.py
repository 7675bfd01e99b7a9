"""Export / import of shareable artifacts: round trip with hash verification, hostile folders refused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tfcaf.artifacts import export_artifact, import_artifact, read_artifact, sha256_file
from tfcaf.cli import main
from tfcaf.errors import RejectedError


def _store_with(tmp_path: Path, kind_dir: str, name: str) -> Path:
    store = tmp_path / "a"
    src = store / kind_dir / name
    (src / "adapter").mkdir(parents=True)
    (src / "manifest.json").write_text(json.dumps({"name": name, "source_sha256": "0" * 64}))
    (src / "source.py").write_text("def f(agents_q, global_state):\n    return agents_q.sum(-1, keepdim=True)\n")
    (src / "adapter" / "weights.bin").write_bytes(bytes(range(256)) * 4)
    return store


@pytest.mark.parametrize("kind,kind_dir", [("function", "approved"), ("generator", "generators"), ("dataset", "datasets")])
def test_round_trip_verifies_hashes(tmp_path, kind, kind_dir, capsys):
    store_a = _store_with(tmp_path, kind_dir, "thing1")
    out = tmp_path / "exported"
    assert main(["export", kind, "thing1", "--out", str(out), "--store", str(store_a)]) == 0
    doc = json.loads((out / "artifact.json").read_text())
    assert doc["kind"] == kind and {f["path"] for f in doc["files"]} == {"manifest.json", "source.py", "adapter/weights.bin"}
    store_b = tmp_path / "b"
    assert main(["import", str(out), "--store", str(store_b), "--json"]) == 0
    for f in doc["files"]:
        assert sha256_file(store_b / kind_dir / "thing1" / f["path"]) == f["sha256"] == sha256_file(store_a / kind_dir / "thing1" / f["path"])
    assert main(["import", str(out), "--store", str(store_b)]) == 2  # exists: usage error, nothing replaced
    capsys.readouterr()


@pytest.fixture
def exported(tmp_path):
    store = _store_with(tmp_path, "approved", "fn1")
    return export_artifact("function", "fn1", tmp_path / "out", store)


def _refused(folder: Path, tmp_path: Path, match: str) -> None:
    with pytest.raises(RejectedError, match=match):
        import_artifact(folder, tmp_path / "dest")
    assert not (tmp_path / "dest" / "approved" / "fn1").exists()


def test_tampered_file_is_refused(exported, tmp_path):
    (exported / "files" / "source.py").write_text("import os\n")
    _refused(exported, tmp_path, "sha256 of 'source.py' does not match")


def test_symlink_is_refused(exported, tmp_path):
    (exported / "files" / "source.py").unlink()
    os.symlink("/etc/passwd", exported / "files" / "source.py")
    _refused(exported, tmp_path, "symlink")


@pytest.mark.parametrize("bad", ["../escape.py", "/etc/passwd", "a/../../b", "./x", "a\\..\\b", "x\x1b[31m"])
def test_path_traversal_is_refused(exported, tmp_path, bad):
    doc = json.loads((exported / "artifact.json").read_text())
    doc["files"][0]["path"] = bad
    (exported / "artifact.json").write_text(json.dumps(doc))
    _refused(exported, tmp_path, "unsafe file path")


def test_unlisted_file_and_binary_manifest_are_refused(exported, tmp_path):
    (exported / "files" / "extra.py").write_text("x = 1\n")
    _refused(exported, tmp_path, "unlisted")
    (exported / "files" / "extra.py").unlink()
    (exported / "artifact.json").write_bytes(b"\x00\x01\xffbinary")
    _refused(exported, tmp_path, "binary")
    (exported / "artifact.json").write_bytes(b"\xff\xfe not utf8")
    _refused(exported, tmp_path, "not UTF-8 JSON")


def test_bad_name_in_manifest_is_refused(exported, tmp_path):
    doc = json.loads((exported / "artifact.json").read_text())
    doc["name"] = "../../approved/evil"
    (exported / "artifact.json").write_text(json.dumps(doc))
    _refused(exported, tmp_path, "artifact name")


def test_cli_refusal_is_one_line(exported, tmp_path, capsys):
    (exported / "files" / "source.py").write_text("tampered\n")
    assert main(["import", str(exported), "--store", str(tmp_path / "dest")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match" in err[0] and "Traceback" not in err[0]
    shutil.rmtree(exported)
