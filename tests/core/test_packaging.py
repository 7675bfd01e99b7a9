"""The installed package imports under one root and lists every sub-package it ships."""

import importlib
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_python_folder_is_a_listed_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = cfg["package-dir"]
    listed = set(cfg["packages"])
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            dotted = ".".join([name, *rel.parts]) if rel.parts else name
            assert dotted in listed, f"{dotted} ({init.parent}) is missing from [tool.setuptools] packages"


def test_stage_packages_import_under_tfcaf():
    for stage in ("generator", "evaluator", "sandbox", "tasks", "trainer", "prompts"):
        mod = importlib.import_module(f"tfcaf.{stage}")
        assert pathlib.Path(mod.__file__).parent.name == stage


def test_import_tfcaf_is_light():
    code = "import sys, tfcaf, tfcaf.contract, tfcaf.tasks.registry; print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "tfcaf.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "version" in out.stdout


def test_test_module_basenames_are_unique():
    """pytest imports test modules by basename (rootdir-relative, no __init__.py): duplicates break collection."""
    names = [p.name for p in (ROOT / "tests").rglob("*.py") if p.name != "conftest.py"]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
