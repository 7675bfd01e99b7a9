"""Which backend serves a tuned generator, and the CLI settings that reach the backend (fast: no model load)."""

from __future__ import annotations

import json

import pytest

from tfcaf.errors import UsageError
from tfcaf.generator.tuning.train import MANIFEST_KIND

TASK = "matrix_climbing"


def _folder(store, name, kind="gguf", adapter="lora", status="finished"):
    folder = store / "generators" / name
    (folder / ("adapter" if adapter == "lora" else "model")).mkdir(parents=True)
    spec = {"gguf": "smollm2", "tiny": "tiny:0", "dir": "/nowhere/model"}[kind]
    (folder / "manifest.json").write_text(json.dumps({
        "kind": MANIFEST_KIND, "name": name, "method": "rft", "mode": "code", "adapter": adapter, "status": status,
        "base": {"spec": spec, "kind": kind, "sha256": "0" * 64, "path": None}}))
    return folder


def test_gguf_lora_generators_go_to_llama_cpp_everything_else_to_transformers(tmp_path):
    from tfcaf.generator.tuning.serve import serving_backend

    assert serving_backend(_folder(tmp_path, "g"), "local") == "local"
    assert serving_backend(tmp_path / "generators" / "g", "transformers") == "transformers"
    assert serving_backend(_folder(tmp_path, "t", kind="tiny"), "local") == "transformers"
    assert serving_backend(_folder(tmp_path, "d", kind="dir"), "local") == "transformers"
    assert serving_backend(_folder(tmp_path, "f", adapter="full"), "local") == "transformers"


def test_backend_settings_carry_generator_context_and_device(tmp_path):
    from tfcaf.generator.config import resolve
    from tfcaf.generator.session import backend_settings

    _folder(tmp_path, "g")
    _folder(tmp_path, "t", kind="tiny")
    for name, backend, want in (("g", None, "local"), ("g", "transformers", "transformers"), ("t", None, "transformers")):
        config, _ = resolve({"task": TASK, "generator": name, "backend": backend, "store": str(tmp_path), "context": 2048,
                             "device": "cuda:1"}, env={})
        assert config.resolved_mode == "code"
        s = backend_settings(config, tmp_path)
        assert (s.name, s.model, s.context, s.device) == (want, str(tmp_path / "generators" / name), 2048, "cuda:1")
    config, sources = resolve({"task": TASK}, env={"TFCAF_CONTEXT": "4096"})
    assert config.context == 4096 and sources["context"].startswith("env")
    assert backend_settings(config, tmp_path).context == 4096


@pytest.mark.parametrize("flags,message", [
    (["--context", "100"], "--context must be an integer between 512"),
    (["--context", "two"], "--context"),
    (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps"),
    (["--device", "cuda:x"], "--device must be"),
])
def test_bad_context_or_device_exit_2(flags, message, capsys):
    from tfcaf.cli import main

    assert main(["generate", "--task", TASK, *flags, "--show-config"]) == 2
    assert message in capsys.readouterr().err


def test_export_refuses_what_llama_cpp_cannot_serve(tmp_path, capsys):
    from tfcaf.cli import main
    from tfcaf.generator.tuning.serve import gguf_serving_files

    _folder(tmp_path, "t", kind="tiny")
    _folder(tmp_path, "f", adapter="full")
    _folder(tmp_path, "r", status="running")
    assert main(["generators", "export", "t", "--store", str(tmp_path)]) == 2
    assert "not a GGUF" in capsys.readouterr().err
    assert main(["generators", "export", "f", "--store", str(tmp_path)]) == 2
    assert "fully fine-tuned" in capsys.readouterr().err
    assert main(["generators", "export", "r", "--store", str(tmp_path)]) == 2
    assert "did not finish" in capsys.readouterr().err
    assert main(["generators", "export", "missing", "--store", str(tmp_path)]) == 2
    with pytest.raises(UsageError, match="no LoRA adapter on a GGUF base"):
        gguf_serving_files(tmp_path / "generators" / "t")
    assert main(["generators", "--store", str(tmp_path), "--json"]) == 0  # the group still lists
    assert {g["name"] for g in json.loads(capsys.readouterr().out)} == {"t", "f", "r"}


def test_sampler_refuses_bad_arguments_before_loading(tmp_path):
    from tfcaf.generator.tuning.serve import llamacpp_sampler

    with pytest.raises(UsageError, match="context must be"):
        llamacpp_sampler(None, context=10)
    with pytest.raises(UsageError, match="not a tuned generator folder"):
        llamacpp_sampler(tmp_path)


def test_a_hash_memoised_without_a_cache_is_still_written_to_a_cache(tmp_path):
    """Serving hashes the base GGUF without a cache folder; a later backend with one must still record it."""
    import hashlib

    from tfcaf.provenance import file_sha256

    f = tmp_path / "model.gguf"
    f.write_bytes(b"weights" * 100)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_sha256(f) == digest
    assert file_sha256(f, tmp_path / "cache") == digest and digest in (tmp_path / "cache" / "sha256.json").read_text()
