"""`lbf_<scenario>` tasks on Level-Based Foraging (`lbforaging` 2.x, MIT): cards and the adapter.

Scenario names follow lbforaging's gym ids without the `Foraging-`/`-v3` wrapping, e.g.
`lbf_2s-8x8-2p-2f-coop` is `Foraging-2s-8x8-2p-2f-coop-v3` (sight 2, 8x8 grid, 2 players, 2 food,
cooperative food levels). LBF has no global state: as EPyMARL does, the global state is the agents'
observations concatenated, so results compare with published ones.

One agent's observation (O = 3 F + 3 N): for each food slot (row, col, level), then for each player
(row, col, level) with the observing agent first. Food slots list the *visible, uneaten* food in
row-major grid order (a slot is not a fixed food item); missing entries are (-1, -1, 0). With full
sight coordinates are absolute grid cells; with sight 2 (`2s-`) they are cells of the agent's 5x5
window clipped at the grid border.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfcaf.errors import MissingDependencyError
from tfcaf.tasks.card import Feature, StateSlice, TaskCard
from tfcaf.tasks.pyloop import LoopEnv, check_options
from tfcaf.tasks.registry import Task, register

if TYPE_CHECKING:
    import numpy as np

INSTALL = "python3 -m pip install 'lbforaging>=2.0'"
EPISODE_LIMIT = 50
MAX_PLAYER_LEVEL = 2
ACTIONS = ("do nothing", "move north (row - 1)", "move south (row + 1)", "move west (col - 1)", "move east (col + 1)",
           "load (pick up) an adjacent food; succeeds when the levels of the agents loading it together reach the food's level")
SCENARIOS = ("2s-8x8-2p-2f-coop", "2s-10x10-3p-3f", "15x15-4p-3f", "8x8-2p-3f")


@dataclass(frozen=True)
class LbfScenario:
    name: str
    size: int
    players: int
    food: int
    sight: int
    coop: bool

    @property
    def gym_id(self) -> str:
        return f"Foraging{'-2s' if self.sight == 2 else ''}-{self.size}x{self.size}-{self.players}p-{self.food}f{'-coop' if self.coop else ''}-v3"

    @property
    def max_food_level(self) -> int:
        """lbforaging: the summed levels of the (up to) three lowest-level players."""
        return MAX_PLAYER_LEVEL * min(3, self.players)

    @property
    def coord_high(self) -> int:
        return 2 * self.sight if self.sight < self.size else self.size - 1


def parse_scenario(name: str) -> LbfScenario:
    m = re.fullmatch(r"(?:(\d+)s-)?(\d+)x\2-(\d+)p-(\d+)f(-coop)?", name)
    if not m:
        raise ValueError(f"not an LBF scenario: {name}")
    size = int(m.group(2))
    return LbfScenario(name, size, int(m.group(3)), int(m.group(4)), int(m.group(1) or size), bool(m.group(5)))


def _features(sc: LbfScenario, o: int) -> tuple[Feature, ...]:
    g, f, far = "global_state", sc.food, float(2 * sc.size)

    def col(i: int, k: int) -> str:
        return f"{g}[:, {i * o + k}]"

    def per_agent(make: Any) -> str:
        return "torch.stack([" + ", ".join(make(i) for i in range(sc.players)) + "], dim=1)"

    def food_dist(i: int) -> str:
        me_r, me_c = col(i, 3 * f), col(i, 3 * f + 1)
        terms = [f"torch.where({col(i, 3 * j + 2)} > 0, torch.abs({col(i, 3 * j)} - {me_r}) + torch.abs({col(i, 3 * j + 1)} - {me_c}), {far})"
                 for j in range(f)]
        return "torch.amin(torch.stack([" + ", ".join(terms) + "], dim=1), dim=1)"

    def visible_food(i: int) -> str:
        return " + ".join(f"({col(i, 3 * j + 2)} > 0).to({g}.dtype)" for j in range(f))

    nearest = per_agent(food_dist)
    return (
        Feature("level", "own level (1 or 2); loading succeeds when the loaders' levels sum to the food's level",
                per_agent(lambda i: col(i, 3 * f + 2)), 1.0, float(MAX_PLAYER_LEVEL)),
        Feature("row", "own grid row (in the agent's own frame: absolute, or its window with sight 2)", per_agent(lambda i: col(i, 3 * f)), 0.0, float(sc.coord_high)),
        Feature("col", "own grid column (same frame as row)", per_agent(lambda i: col(i, 3 * f + 1)), 0.0, float(sc.coord_high)),
        Feature("nearest_food_distance", f"Manhattan distance to the nearest visible food; {far:g} when none is visible",
                nearest, 1.0, far),
        Feature("food_adjacent", "1 if a visible food is next to the agent (it can load), else 0",
                f"({nearest} <= 1).to({g}.dtype)", 0.0, 1.0),
        Feature("visible_food", "number of uneaten food items the agent sees", per_agent(visible_food), 0.0, float(f)),
    )


def lbf_card(name: str) -> TaskCard:
    sc = parse_scenario(name)
    n, f = sc.players, sc.food
    o = 3 * f + 3 * n
    hi = float(sc.coord_high)
    slices = []
    for i in range(n):
        b = i * o
        slices.append(StateSlice(f"agent{i}_food", b, b + 3 * f,
                                 f"agent {i}'s view of the food: (row, col, level) per slot, visible uneaten food in row-major order, "
                                 "(-1, -1, 0) for empty slots", -1.0, max(hi, float(sc.max_food_level))))
        slices.append(StateSlice(f"agent{i}_players", b + 3 * f, b + o,
                                 f"agent {i}'s view of the players: (row, col, level) per player, agent {i} itself first, "
                                 "(-1, -1, 0) for players out of sight", -1.0, max(hi, float(MAX_PLAYER_LEVEL))))
    sight = f"sees a {2 * sc.sight + 1}x{2 * sc.sight + 1} window around itself" if sc.sight < sc.size else "sees the whole grid"
    return TaskCard(
        name=f"lbf_{name}", family="lbf", backend="lbforaging (Level-Based Foraging)", n_agents=n, state_dim=n * o, obs_dim=o,
        n_actions=len(ACTIONS), episode_limit=EPISODE_LIMIT, action_meanings=ACTIONS,
        reward=("shared team reward: the sum of the agents' rewards; an agent that helps load a food of level L earns "
                "(its level x L) / (summed loader levels x total food level spawned), so a whole episode returns at most 1"),
        description=(f"Level-Based Foraging on a {sc.size}x{sc.size} grid: {n} agents of level 1-{MAX_PLAYER_LEVEL} collect {f} food items "
                     f"(levels up to {sc.max_food_level}{'; every food needs all agents together' if sc.coop else ''}). Each agent {sight}. "
                     "A food is collected when adjacent agents choose 'load' in the same step with summed levels at least the food's level. "
                     f"The episode ends when all food is collected or after {EPISODE_LIMIT} steps. "
                     "Credit should reflect which agents are positioned and levelled to help load."),
        state_slices=tuple(slices), alive=None, requires_igm=True, features=_features(sc, o), install_hint=INSTALL,
        reward_range=(0.0, 1.0),
        notes=("Global state = the agents' observations concatenated (agent-major), as in EPyMARL.",
               "Grid rows and columns in each observation are in the observing agent's frame."),
    )


for _name in SCENARIOS:
    register(Task(lbf_card(_name), "tfcaf.tasks.lbf:make_lbf_env", requires=("lbforaging",), install=INSTALL))


class LbfEnv(LoopEnv):
    """E Level-Based Foraging games, stepped one after another."""

    def __init__(self, card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0) -> None:
        try:
            import gymnasium
            import lbforaging  # noqa: F401  (registers the Foraging-* ids)
        except ImportError as err:
            raise MissingDependencyError(err.name or "lbforaging", f"task '{card.name}'", INSTALL) from err
        super().__init__(card, n_envs, device, seed)
        sc = parse_scenario(card.name.removeprefix("lbf_"))
        self.envs = [gymnasium.make(sc.gym_id).unwrapped for _ in range(n_envs)]

    def _pack(self, i: int, obs: Any) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        import numpy as np

        env = self.envs[i]
        o = np.stack([np.asarray(x, np.float32) for x in obs])  # [N, O]
        avail = np.zeros((self.card.n_agents, self.card.n_actions), bool)
        for k, player in enumerate(env.players):
            for action in env._valid_actions[player]:
                avail[k, action.value] = True
        return o, o.reshape(-1), avail

    def reset_one(self, i: int, seed: int | None) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        obs, _ = self.envs[i].reset(seed=seed)
        return self._pack(i, obs)

    def step_one(self, i: int, actions: "np.ndarray") -> tuple[Any, ...]:
        env = self.envs[i]
        obs, rewards, done, _, _ = env.step([int(a) for a in actions])
        all_eaten = int(env.field.sum()) == 0
        o, s, av = self._pack(i, obs)
        return o, s, av, float(sum(rewards)), bool(done and all_eaten), bool(done and not all_eaten)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_lbf_env(card: TaskCard, n_envs: int = 1, device: str = "cpu", seed: int = 0, **options: Any) -> LbfEnv:
    check_options("lbf", options)
    return LbfEnv(card, n_envs=n_envs, device=device, seed=seed)
