"""Training configuration: one frozen dataclass, per-family defaults with their provenance.

Fair by default: every mixer gets the same hyperparameters; only the family (matrix, lbf, smax, ...)
changes the defaults, and only where the pymarl lineage itself uses different values. Derived values
(e.g. the number of updates per iteration) are computed by functions, never by mutating a config.

Sources of the defaults:
  pymarl (Samvelyan et al. 2019, `src/config/default.yaml`, `algs/qmix.yaml`): RMSprop lr 5e-4
    (alpha 0.99, eps 1e-5), batch 32 episodes, buffer 5000 episodes, gamma 0.99, grad-norm clip 10,
    hard target update every 200 episodes, epsilon 1.0 -> 0.05 over 50k steps, GRU hidden 64,
    QMIX mixing embed 32 with a 64-unit hypernetwork, agent id and last action in the input.
  EPyMARL (Papoudakis et al. 2021, `algs/qmix.yaml`): Adam lr 5e-4, standardise rewards, same sizes.
  JaxMARL (Rutherford et al. 2023): 16 parallel SMAX envs per update.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tfcaf.errors import UsageError


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. A field's docstring is its documentation in `--show-config`."""

    steps: int = 200_000
    """Environment steps to train for (one step of one env counts 1; E envs stepped together count E)."""
    n_envs: int = 8
    """E: environments stepped together by the collector (one batched call per step)."""
    updates_per_iter: int = 0
    """Learner updates after each collection iteration; 0 = one per completed episode (pymarl's ratio)."""
    episodes_per_iter: int = 0
    """Episodes to complete per collection iteration; 0 = E."""
    batch_size: int = 32
    """Episodes per learner update (pymarl: 32)."""
    buffer_size: int = 5000
    """Episodes kept in the replay buffer (pymarl: 5000)."""
    warmup_episodes: int = 32
    """No updates until the buffer holds this many episodes (at least batch_size)."""
    lr: float = 5e-4
    """Learning rate (pymarl RMSprop 5e-4; EPyMARL Adam 5e-4)."""
    optimizer: str = "rmsprop"
    """'rmsprop' (pymarl: alpha 0.99, eps 1e-5) or 'adam' (EPyMARL)."""
    gamma: float = 0.99
    """Discount."""
    grad_clip: float = 10.0
    """Max global gradient norm (pymarl: 10)."""
    target_update: str = "hard"
    """'hard' (copy every target_update_interval updates) or 'soft' (Polyak with tau every update)."""
    target_update_interval: int = 200
    """Updates between hard target copies (pymarl: 200 episodes at one update per episode)."""
    tau: float = 0.005
    """Polyak factor for soft target updates."""
    double_q: bool = True
    """Double Q-learning: online net picks the next action, target net values it."""
    td_lambda: float = 0.0
    """TD(lambda) targets when > 0 (pymarl2 uses 0.6); 0 = one-step or n-step targets."""
    n_step: int = 1
    """n-step targets when > 1 (ignored when td_lambda > 0)."""
    standardise_rewards: bool = False
    """Standardise rewards with running mean/std before the loss (EPyMARL option)."""
    reward_scale: float = 1.0
    """Multiply rewards by this before the loss (JaxMARL scales SMAX rewards by 10)."""
    epsilon_start: float = 1.0
    """Initial exploration rate."""
    epsilon_finish: float = 0.05
    """Final exploration rate."""
    epsilon_anneal_steps: int = 50_000
    """Env steps over which epsilon falls linearly (pymarl: 50k)."""
    agent_hidden: int = 64
    """GRU hidden size of the shared agent network (pymarl: 64)."""
    agent_id: bool = True
    """Append a one-hot agent id to each agent's input (parameter sharing)."""
    last_action: bool = True
    """Append the agent's previous action (one-hot) to its input."""
    mixing_embed: int = 32
    """QMIX mixing embedding size (pymarl: 32)."""
    hypernet_embed: int = 64
    """QMIX hypernetwork hidden size (pymarl: 64)."""
    compile_mixer: bool = False
    """torch.compile the mixer (off by default: compiling is slow on CPU and gains little there)."""
    test_interval: int = 10_000
    """Env steps between greedy test evaluations."""
    test_episodes: int = 32
    """Greedy test episodes per evaluation (one per test env)."""
    log_interval: int = 2_000
    """Env steps between training-metric lines."""
    checkpoint_interval: int = 20_000
    """Env steps between checkpoints (also written after each test and at the end)."""
    tensorboard: bool = True
    """Write TensorBoard event files next to metrics.jsonl."""
    threads: int = 1
    """torch intra-op threads on CPU (1: see FACTS, 2 threads collapse under load)."""
    seed: int = 0
    """Seed for torch, the envs and the collector."""

    def __post_init__(self) -> None:
        checks = [
            (self.steps > 0, "steps must be > 0"),
            (self.n_envs > 0, "n_envs must be > 0"),
            (self.batch_size > 0 and self.buffer_size >= self.batch_size, "need 0 < batch_size <= buffer_size"),
            (self.optimizer in ("rmsprop", "adam"), "optimizer must be 'rmsprop' or 'adam'"),
            (self.target_update in ("hard", "soft"), "target_update must be 'hard' or 'soft'"),
            (0.0 <= self.td_lambda <= 1.0, "td_lambda must be in [0, 1]"),
            (self.n_step >= 1, "n_step must be >= 1"),
            (0.0 <= self.gamma <= 1.0, "gamma must be in [0, 1]"),
            (0.0 < self.tau <= 1.0, "tau must be in (0, 1]"),
            (self.lr > 0, "lr must be > 0"),
            (self.test_episodes > 0, "test_episodes must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"invalid training config: {message}")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # One-step games: T = 1, so episodes are cheap; short annealing as in the QTRAN/WQMIX matrix runs.
    "matrix": dict(steps=10_000, n_envs=32, updates_per_iter=2, epsilon_anneal_steps=5_000, test_interval=1_000,
                   test_episodes=32, log_interval=1_000, target_update_interval=50,
                   checkpoint_interval=10_000, warmup_episodes=64),
    # EPyMARL LBF benchmark: Adam 5e-4, standardised rewards, epsilon over 200k (we keep 50k for CPU budgets).
    "lbf": dict(optimizer="adam", standardise_rewards=True, n_envs=8, steps=500_000, test_interval=10_000),
    # SMAX (JaxMARL runs 16 envs); pymarl's SMAC settings otherwise.
    "smax": dict(n_envs=16, steps=1_000_000, test_interval=10_000, buffer_size=5000),
    "mpe": dict(optimizer="adam", n_envs=8, steps=500_000),
    "vmas": dict(optimizer="adam", n_envs=16, steps=500_000),
}
"""Per-family overrides of TrainConfig's defaults (identical for every mixer)."""


def field_docs() -> dict[str, str]:
    """Field name -> its docstring (read from this module's source)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
            docs[node.target.id] = str(nxt.value.value)  # type: ignore[attr-defined]
    return docs


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(TrainConfig)}
    if name not in kinds:
        raise UsageError(f"unknown config field '{name}'. Known: {', '.join(sorted(kinds))}.")
    kind = kinds[name]
    try:
        if kind == "bool":
            if isinstance(raw, str):
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                return raw.lower() in ("1", "true", "yes")
            return bool(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise UsageError(f"config field '{name}' expects {kind}, got {raw!r}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file of field -> value."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read config file {p}: {err.strerror}") from None
    try:
        if p.suffix == ".toml":
            import tomllib  # Python 3.11+

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        raise UsageError(f"cannot parse config file {p}: {err}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {p} must hold a table/object of field -> value")
    return data


def resolve_config(family: str, file_values: dict[str, Any] | None = None,
                   flags: dict[str, Any] | None = None) -> tuple[TrainConfig, dict[str, str]]:
    """Build the config: defaults < family defaults < config file < flags. Returns it and each field's source.

    >>> cfg, source = resolve_config("matrix", flags={"seed": 3})
    >>> cfg.seed, source["seed"], source["n_envs"]
    (3, 'flag', 'family:matrix')
    """
    values: dict[str, Any] = {}
    source = {f.name: "default" for f in fields(TrainConfig)}
    for origin, layer in ((f"family:{family}", FAMILY_DEFAULTS.get(family, {})), ("file", file_values or {}),
                          ("flag", {k: v for k, v in (flags or {}).items() if v is not None})):
        for name, raw in layer.items():
            values[name] = _coerce(name, raw)
            source[name] = origin
    return TrainConfig(**values), source
