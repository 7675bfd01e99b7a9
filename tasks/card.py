"""Task cards: everything a prompt, a property test and a trainer need to know about a task, as data.

A card is a frozen dataclass built from the same constants the environment adapter uses, so the prose
an LLM reads cannot drift from the environment (QLLM's hand-written prompts were wrong on three
tasks). Cards import neither torch nor JAX: they load even when the environment is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StateSlice:
    """A named range of global_state columns, `global_state[:, start:stop]`."""

    name: str
    """Identifier, e.g. 'ally_health'."""
    start: int
    """First column (inclusive)."""
    stop: int
    """Last column (exclusive)."""
    meaning: str
    """What the values mean, for the prompt and the reviewer."""
    low: float
    """Smallest value the environment produces in these columns."""
    high: float
    """Largest value the environment produces in these columns."""
    per_agent: bool = False
    """True when the slice holds one value per agent, in agent order (so width == n_agents)."""

    @property
    def width(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class AliveFlag:
    """How to read agent i's alive flag from the global state: alive iff `global_state[:, columns[i]] > threshold`."""

    columns: tuple[int, ...]
    """One state column per agent, in agent order."""
    threshold: float = 0.0
    """Strictly above this value means alive."""
    meaning: str = ""
    """Which quantity the column holds (e.g. 'normalised health')."""


@dataclass(frozen=True)
class Feature:
    """A named per-agent feature a structured (spec-mode) generator can reference by name.

    `expr` is a Python expression over `global_state` ([B, S]) and `torch` that evaluates to [B, N].
    It is our text, not the LLM's, yet every source rendered with it is vetted like any candidate.
    """

    name: str
    meaning: str
    expr: str
    low: float
    high: float


@dataclass(frozen=True)
class TaskCard:
    """A task, as data. `n_agents`, `state_dim` and the layout are checked against the real
    environment by tests/tasks conformance tests."""

    name: str
    """Registry key, e.g. 'smac_3m'."""
    family: str
    """Task family: 'matrix', 'smax', 'lbf', 'mpe', 'vmas'."""
    backend: str
    """What simulates it, e.g. 'torch (in-house)', 'jaxmarl SMAX'."""
    n_agents: int
    """N."""
    state_dim: int
    """S, the width of global_state."""
    obs_dim: int
    """O, the width of one agent's observation."""
    n_actions: int
    """A, discrete actions per agent."""
    episode_limit: int
    """Steps after which an episode is truncated."""
    action_meanings: tuple[str, ...]
    """One short phrase per action index."""
    reward: str
    """How the shared team reward is computed."""
    description: str
    """Prose for prompts: the goal and what matters for credit."""
    state_slices: tuple[StateSlice, ...]
    """The global-state layout; slices cover [0, state_dim) without overlap."""
    alive: AliveFlag | None = None
    """How to read each agent's alive flag, when the task has deaths."""
    requires_igm: bool = True
    """Whether a credit function must be monotone in every Q_i (IGM, QMIX's condition)."""
    features: tuple[Feature, ...] = ()
    """Named per-agent features for spec-mode generation."""
    install_hint: str = ""
    """How to install the environment's package, shown when it is missing."""
    reward_range: tuple[float, float] = (float("-inf"), float("inf"))
    """Smallest and largest per-step team reward."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Caveats shown with the card (e.g. 'SMAX, not SMAC')."""

    def __post_init__(self) -> None:
        covered = 0
        for s in sorted(self.state_slices, key=lambda s: s.start):
            if s.start != covered or s.stop <= s.start:
                raise ValueError(f"{self.name}: state slices must tile [0, {self.state_dim}) in order; '{s.name}' starts at {s.start}, expected {covered}")
            if s.per_agent and s.width != self.n_agents:
                raise ValueError(f"{self.name}: per-agent slice '{s.name}' has width {s.width}, expected {self.n_agents}")
            if not s.low <= s.high:
                raise ValueError(f"{self.name}: slice '{s.name}' has low > high")
            covered = s.stop
        if covered != self.state_dim:
            raise ValueError(f"{self.name}: state slices cover {covered} columns, state_dim is {self.state_dim}")
        if len(self.action_meanings) != self.n_actions:
            raise ValueError(f"{self.name}: {len(self.action_meanings)} action meanings for {self.n_actions} actions")
        if self.alive is not None and len(self.alive.columns) != self.n_agents:
            raise ValueError(f"{self.name}: alive flag names {len(self.alive.columns)} columns for {self.n_agents} agents")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate feature names")

    def slice(self, name: str) -> StateSlice:
        for s in self.state_slices:
            if s.name == name:
                return s
        raise KeyError(f"{self.name} has no state slice '{name}'")

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no feature '{name}'")

    @property
    def state_low(self) -> tuple[float, ...]:
        """Per-column lower bounds, from the slices."""
        out: list[float] = []
        for s in sorted(self.state_slices, key=lambda s: s.start):
            out.extend([s.low] * s.width)
        return tuple(out)

    @property
    def state_high(self) -> tuple[float, ...]:
        """Per-column upper bounds, from the slices."""
        out: list[float] = []
        for s in sorted(self.state_slices, key=lambda s: s.start):
            out.extend([s.high] * s.width)
        return tuple(out)


def _encode(x: object) -> object:
    import math

    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    if isinstance(x, dict):
        return {k: _encode(v) for k, v in x.items()}
    return x


def _float(x: object) -> float:
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"expected a number, got {x!r}")
    return float(x)


def card_to_json(card: TaskCard) -> dict:
    """The one JSON form of a card: plain data, non-finite floats as the strings 'inf' / '-inf' (strict
    JSON has no Infinity). `card_from_json` inverts it.

    >>> from tfcaf.tasks.registry import get_card
    >>> c = get_card("smac_3m")  # reward_range (0, 2)
    >>> data = card_to_json(c)
    >>> card_to_json(card_from_json(data)) == data, data["reward_range"]
    (True, [0.0, 2.0])
    """
    import dataclasses

    return _encode(dataclasses.asdict(card))  # type: ignore[return-value]


def card_from_json(data: dict) -> TaskCard:
    """Rebuild a card from `card_to_json` data (ValueError / TypeError / KeyError on malformed data)."""
    d = dict(data)
    d["state_slices"] = tuple(StateSlice(**{**s, "low": _float(s["low"]), "high": _float(s["high"])}) for s in d["state_slices"])
    d["features"] = tuple(Feature(**{**f, "low": _float(f["low"]), "high": _float(f["high"])}) for f in d.get("features", ()))
    if d.get("alive") is not None:
        d["alive"] = AliveFlag(**{**d["alive"], "columns": tuple(d["alive"]["columns"]),
                                  "threshold": _float(d["alive"].get("threshold", 0.0))})
    for key in ("action_meanings", "notes"):
        if key in d:
            d[key] = tuple(d[key])
    if "reward_range" in d:
        d["reward_range"] = tuple(_float(v) for v in d["reward_range"])
    return TaskCard(**d)
