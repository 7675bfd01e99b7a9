"""Training configuration: one frozen dataclass, layered defaults with their provenance.

Layers, later wins: field defaults < task family (`FAMILY_DEFAULTS`) < algorithm (`ALGOS[a].defaults`,
then its per-family `ALGOS[a].family_defaults`) < config file < flags. `--show-config` prints each value's
layer. Fair by default: every mixer of the value-decomposition algorithm gets the same hyperparameters.
Derived values (e.g. the number of updates per iteration) are computed by functions, never by mutating a
config. Fields of one algorithm family are ignored by the other (their docstrings say which).

Sources of the defaults:
  pymarl (Samvelyan et al. 2019, `src/config/default.yaml`, `algs/qmix.yaml`): RMSprop lr 5e-4
    (alpha 0.99, eps 1e-5), batch 32 episodes, buffer 5000 episodes, gamma 0.99, grad-norm clip 10,
    hard target update every 200 episodes, epsilon 1.0 -> 0.05 over 50k steps, GRU hidden 64,
    QMIX mixing embed 32 with a 64-unit hypernetwork, agent id and last action in the input.
  EPyMARL (Papoudakis et al. 2021, `algs/qmix.yaml`): Adam lr 5e-4, standardise rewards, same sizes.
  JaxMARL (Rutherford et al. 2023): 16 parallel SMAX envs per update.
  HARL (Zhong, Kuba et al. 2024, `harl/configs/algos_cfgs/happo.yaml`, `hatrpo.yaml`, `mappo.yaml`): the
    policy-gradient fields (ppo_epoch 5, clip 0.2, GAE lambda 0.95, Huber delta 10, ValueNorm, hidden
    [128, 128], LayerNorm on features, orthogonal init with output gain 0.01, kl_threshold 0.01, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    """Learning rate (vd: pymarl RMSprop 5e-4, EPyMARL Adam 5e-4; pg: the actors' Adam, HARL 5e-4)."""
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
    # -- policy-gradient algorithms (happo, hatrpo, mappo; HARL's defaults) -------------------------
    rollout_length: int = 100
    """[pg] Env steps per env per iteration (HARL's episode_length): one update every rollout_length x E steps."""
    ppo_epoch: int = 5
    """[pg] Passes over each rollout per actor (PPO) and for the critic."""
    num_mini_batch: int = 1
    """[pg] Mini-batches per pass (split over envs x time for MLP policies, over envs for GRU ones)."""
    clip_param: float = 0.2
    """[pg] PPO ratio clip epsilon (also the value-clip range)."""
    entropy_coef: float = 0.01
    """[pg] Entropy bonus weight."""
    value_loss_coef: float = 1.0
    """[pg] Weight of the critic loss."""
    critic_lr: float = 5e-4
    """[pg] Critic learning rate (Adam; the actors use lr)."""
    opti_eps: float = 1e-5
    """[pg] Adam epsilon (HARL: 1e-5)."""
    gae_lambda: float = 0.95
    """[pg] GAE lambda (Schulman et al. 2016)."""
    use_huber_loss: bool = True
    """[pg] Huber instead of squared value error."""
    huber_delta: float = 10.0
    """[pg] Huber threshold."""
    use_clipped_value_loss: bool = True
    """[pg] PPO-style clipped value loss (max of clipped and unclipped errors)."""
    use_valuenorm: bool = True
    """[pg] Normalise value targets with running mean/variance (HARL's ValueNorm)."""
    pg_hidden: int = 128
    """[pg] Width of the two hidden layers of actors and critic (HARL: [128, 128])."""
    recurrent: bool = False
    """[pg] GRU actors and critic (HARL's use_recurrent_policy) instead of MLPs."""
    feature_norm: bool = True
    """[pg] LayerNorm on the input features (HARL's use_feature_normalization)."""
    share_param: bool = False
    """[pg] One actor for all agents (agent id appended); HAPPO/HATRPO default false, MAPPO true."""
    fixed_order: bool = False
    """[pg] Update agents in index order every iteration instead of a fresh random permutation."""
    value_kind: str = "ep"
    """[pg] Critic input: 'ep' (environment-provided global state) or 'fp' (state + agent's obs + id; one value per agent)."""
    kl_threshold: float = 0.01
    """[pg] HATRPO: the KL trust-region bound delta."""
    ls_step: int = 10
    """[pg] HATRPO: backtracking line-search steps."""
    accept_ratio: float = 0.5
    """[pg] HATRPO: accept a step when actual/expected improvement exceeds this."""
    cg_iters: int = 10
    """[pg] HATRPO: conjugate-gradient iterations."""
    fisher_damping: float = 0.1
    """[pg] HATRPO: damping added to Fisher-vector products."""
    seed: int = 0
    """Seed for torch, the envs and the collector."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise UsageError(f"invalid training config: {f.name} must be a finite number, got {value!r}")
            if f.type == "int" and f.name in _POSITIVE and value <= 0:
                raise UsageError(f"invalid training config: {f.name} must be > 0, got {value!r}")
            if f.type == "int" and f.name in _NON_NEGATIVE and value < 0:
                raise UsageError(f"invalid training config: {f.name} must be >= 0, got {value!r}")
            if f.name in _PROBABILITIES and not 0.0 <= value <= 1.0:
                raise UsageError(f"invalid training config: {f.name} must be in [0, 1], got {value!r}")
            if f.name in _POSITIVE_FLOATS and not value > 0:
                raise UsageError(f"invalid training config: {f.name} must be > 0, got {value!r}")
            if f.name in _NON_NEGATIVE_FLOATS and value < 0:
                raise UsageError(f"invalid training config: {f.name} must be >= 0, got {value!r}")
        checks = [
            (self.buffer_size >= self.batch_size, "need batch_size <= buffer_size"),
            (self.optimizer in ("rmsprop", "adam"), "optimizer must be 'rmsprop' or 'adam'"),
            (self.target_update in ("hard", "soft"), "target_update must be 'hard' or 'soft'"),
            (self.tau > 0.0, "tau must be in (0, 1]"),
            (self.value_kind in ("ep", "fp"), "value_kind must be 'ep' or 'fp'"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"invalid training config: {message}")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


VD_ONLY = frozenset({"updates_per_iter", "episodes_per_iter", "batch_size", "buffer_size", "warmup_episodes", "optimizer",
                     "target_update", "target_update_interval", "tau", "double_q", "td_lambda", "n_step",
                     "standardise_rewards", "epsilon_start", "epsilon_finish", "epsilon_anneal_steps", "agent_hidden",
                     "agent_id", "last_action", "mixing_embed", "hypernet_embed", "compile_mixer"})
"""Fields only the value-decomposition (replay) path reads; the '[pg]' fields only the rollout path reads."""

_POSITIVE = {"steps", "n_envs", "batch_size", "buffer_size", "target_update_interval", "n_step", "agent_hidden",
             "mixing_embed", "hypernet_embed", "test_interval", "test_episodes", "log_interval", "checkpoint_interval",
             "threads", "rollout_length", "ppo_epoch", "num_mini_batch", "pg_hidden", "ls_step", "cg_iters"}
_NON_NEGATIVE = {"updates_per_iter", "episodes_per_iter", "warmup_episodes", "epsilon_anneal_steps", "seed"}
_PROBABILITIES = {"gamma", "td_lambda", "tau", "epsilon_start", "epsilon_finish", "gae_lambda", "clip_param",
                  "accept_ratio"}
_POSITIVE_FLOATS = {"lr", "critic_lr", "grad_clip", "opti_eps", "huber_delta", "kl_threshold", "reward_scale"}
_NON_NEGATIVE_FLOATS = {"entropy_coef", "value_loss_coef", "fisher_damping"}

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
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError):
        raise UsageError(f"config field '{name}' expects {kind}, got {raw!r}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file of field -> value."""
    from tfcaf.errors import RejectedError
    from tfcaf.files import read_text  # the one reader of untrusted files (size, binary, NUL)

    p = Path(path)
    try:
        text = read_text(p, "config file", max_bytes=1_000_000)
    except RejectedError as err:  # a malformed --config is the user's input: a usage error (exit 2)
        raise UsageError(str(err)) from None
    try:
        if p.suffix == ".toml":
            import tomllib  # Python 3.11+

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        raise UsageError(f"cannot parse config file {p}: {type(err).__name__} {ascii(str(err))[:200]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {p} must hold a table/object of field -> value")
    return data


def resolve_config(family: str, file_values: dict[str, Any] | None = None,
                   flags: dict[str, Any] | None = None, algo: str = "vd") -> tuple[TrainConfig, dict[str, str]]:
    """Build the config: defaults < family < algorithm (< its per-family layer) < config file < flags.
    Returns it and each field's source.

    >>> cfg, source = resolve_config("matrix", flags={"seed": 3})
    >>> cfg.seed, source["seed"], source["n_envs"]
    (3, 'flag', 'family:matrix')
    >>> cfg, source = resolve_config("smax", algo="happo")
    >>> source["n_envs"], source["lr"]
    ('algo:happo', 'algo:happo')
    """
    from tfcaf.trainer.algos import get_algo

    spec = get_algo(algo)
    values: dict[str, Any] = {}
    source = {f.name: "default" for f in fields(TrainConfig)}
    layers = ((f"family:{family}", FAMILY_DEFAULTS.get(family, {})), (f"algo:{spec.name}", spec.defaults),
              (f"algo:{spec.name}+{family}", spec.family_defaults.get(family, {})), ("file", file_values or {}),
              ("flag", {k: v for k, v in (flags or {}).items() if v is not None}))
    for origin, layer in layers:
        for name, raw in layer.items():
            values[name] = _coerce(name, raw)
            source[name] = origin
    return TrainConfig(**values), source
