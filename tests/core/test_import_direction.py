"""Imports run one way through the stages: core <- tasks <- generator <- sandbox <- evaluator <- trainer.

A stage may import the core (`tfcaf.*` modules) and earlier stages, never a later one; the core imports
no stage (only `tfcaf/cli.py` registers every stage's verbs). Every import counts, including the ones
inside functions (a lazy import does not remove a cycle). The exceptions that exist today are listed
below with their reason: a new one fails this test, and a listed one that disappears must be removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"tfcaf": "core", "prompts": "core", "tasks": "tasks", "generator": "generator", "sandbox": "sandbox",
           "evaluator": "evaluator", "trainer": "trainer"}
ORDER = {"core": 0, "tasks": 1, "generator": 2, "sandbox": 3, "evaluator": 4, "trainer": 5}
STAGE_OF_MODULE = {"prompts": "core", "tasks": "tasks", "generator": "generator", "sandbox": "sandbox",
                   "evaluator": "evaluator", "trainer": "trainer"}

KNOWN = {
    # the generate loop orchestrates the whole pipeline: it calls the vetter, the judge, the reward,
    # goals and selection (an orchestrator above the stages would remove these)
    ("generator/loop.py", "evaluator"), ("generator/session.py", "sandbox"),
    # `generate --refiner` loads the refinement policy, which lives with the refinement MDP (goals, reward)
    ("generator/session.py", "evaluator"),
    # prompts carry the goal block: the goal vocabulary lives with the checks in the evaluator
    ("generator/prompting.py", "evaluator"), ("generator/config.py", "evaluator"),
    # the review page diffs the selected candidate's rebuilt graph (engineer A's file)
    ("generator/review.py", "sandbox"),
    # the property suite runs inside the sandbox worker
    ("sandbox/worker.py", "evaluator"),
    # approval pins the graph's hash
    ("tfcaf/approval.py", "sandbox"),
    # online tuning scores its own samples like the generate loop: vetter + tiered reward
    ("generator/tuning/rewards.py", "evaluator"),
    # the sac-glam refiner trains on and serves the refinement MDP (observation, goal_reward, RefineEnv)
    ("generator/tuning/sacglam.py", "evaluator"),
}
CLI_WIRING = {"tfcaf/cli.py", "tfcaf/plugins_cli.py"}
"""Command-line wiring in the core that loads every stage's verbs or registries (nothing imports it)."""


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "tfcaf" and len(parts) > 1 and parts[1] in STAGE_OF_MODULE:
                out.add(STAGE_OF_MODULE[parts[1]])
    return out


def _violations() -> set[tuple[str, str]]:
    found = set()
    for folder, stage in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in CLI_WIRING:
                continue
            for target in _imports(path):
                if target != stage and ORDER[target] > ORDER[stage]:
                    found.add((rel, target))
    return found


def test_no_new_backward_imports():
    new = _violations() - KNOWN
    assert not new, f"imports against the stage order: {sorted(new)}"


def test_known_exceptions_still_exist():
    gone = KNOWN - _violations()
    assert not gone, f"these exceptions are fixed: remove them from KNOWN: {sorted(gone)}"


def test_shared_types_live_in_the_core():
    from tfcaf import rundir, verdict
    from tfcaf.generator.rundir import RunDir
    from tfcaf.sandbox.verdict import Verdict

    assert RunDir is rundir.RunDir and Verdict is verdict.Verdict
