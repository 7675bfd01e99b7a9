"""Config resolution: flag > env > config file > default, with the source of every setting."""

from __future__ import annotations

import json

import pytest

from tfcaf.errors import UsageError
from tfcaf.generator.config import GenerateConfig, field_docs, resolve


def test_precedence_and_sources(tmp_path):
    cfg_file = tmp_path / "t.toml"
    cfg_file.write_text('[generate]\nk = 5\nrounds = 4\nbackend = "openai"\nmodel = "m"\n')
    config, sources = resolve({"task": "smac_3m", "rounds": 2}, cfg_file, env={"TFCAF_K": "6", "OPENAI_BASE_URL": "http://x/v1"})
    assert (config.k, config.rounds, config.backend, config.base_url) == (6, 2, "openai", "http://x/v1")
    assert sources["k"] == "env TFCAF_K" and sources["rounds"] == "flag" and sources["base_url"] == "env OPENAI_BASE_URL"
    assert sources["backend"] == f"config file {cfg_file}" and sources["seed"] == "default"


def test_mode_defaults_per_backend():
    assert GenerateConfig(task="x", backend="local").resolved_mode == "spec"
    assert GenerateConfig(task="x", backend="openai").resolved_mode == "code"
    assert GenerateConfig(task="x", backend="local", mode="code").resolved_max_tokens == 1024


@pytest.mark.parametrize("flags, env, match", [
    ({"task": "smac_3m", "k": 0}, {}, "--k"),
    ({"task": "smac_3m", "backend": "nope"}, {}, "unknown backend"),
    ({"task": "smac_3m", "mode": "prose"}, {}, "--mode"),
    ({"task": "smac_3m"}, {"TFCAF_ROUNDS": "many"}, "TFCAF_ROUNDS"),
    ({}, {}, "--task"),
])
def test_bad_settings_are_usage_errors(flags, env, match):
    with pytest.raises(UsageError, match=match):
        resolve(flags, env=env)


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[generate]\nwhat = 1\n")
    with pytest.raises(UsageError, match="unknown setting"):
        resolve({"task": "smac_3m"}, bad, env={})
    bad.write_text("[generate\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        resolve({"task": "smac_3m"}, bad, env={})
    with pytest.raises(UsageError, match="cannot read"):
        resolve({"task": "smac_3m"}, tmp_path / "missing.toml", env={})


def test_every_field_has_a_docstring():
    from dataclasses import fields

    docs = field_docs()
    assert all(docs.get(f.name) for f in fields(GenerateConfig))


def test_critic_is_a_deprecated_alias_of_judge(tmp_path, capsys):
    from tfcaf.cli import main

    code = main(["generate", "--task", "matrix_climbing", "--no-critic", "--show-config", "--json", "--store", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "deprecated" in err and "--no-judge" in err
    row = next(r for r in json.loads(out) if r["setting"] == "judge")
    assert row["value"] is False and row["source"] == "flag"
    assert main(["generate", "--task", "matrix_climbing", "--critic", "--no-judge", "--show-config", "--store", str(tmp_path)]) == 2


def test_critic_in_a_config_file_and_stored_runs_maps_to_judge(tmp_path, capsys):
    from tfcaf.generator.config import upgrade_fields

    cfg = tmp_path / "t.toml"
    cfg.write_text("[generate]\ntask = 'matrix_climbing'\ncritic = false\n")
    config, sources = resolve({}, cfg, env={})
    assert config.judge is False and "deprecated" in capsys.readouterr().err
    assert upgrade_fields({"critic": True, "k": 2}, "x", warn=False) == {"judge": True, "k": 2}


def test_goals_are_validated(tmp_path):
    from tfcaf.cli import main
    from tfcaf.tasks.registry import get_card

    assert main(["generate", "--task", "matrix_climbing", "--goals", "bogus", "--show-config", "--store", str(tmp_path)]) == 2
    assert main(["generate", "--task", "smac_3m", "--goals", "uses_feature:nope", "--show-config", "--store", str(tmp_path)]) == 2
    config, _ = resolve({"task": "smac_3m", "goals": "contract, uses_feature:health"}, env={})
    assert config.resolved_goals(get_card("smac_3m")) == ["contract", "uses_feature:health"]
    assert resolve({"task": "smac_3m", "goals": "none"}, env={})[0].resolved_goals(get_card("smac_3m")) == []
    assert "masks_dead_agents" in resolve({"task": "smac_3m"}, env={})[0].resolved_goals(get_card("smac_3m"))
