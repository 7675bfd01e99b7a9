"""Task cards for `smac_<map>` on JaxMARL's SMAX, as plain data (no JAX import).

SMAX is a JAX re-implementation of SMAC-style battles, not StarCraft II: results are labelled SMAX.
The constants below copy SMAX 0.2.0's defaults (unit types, scenario table); tests/tasks checks them
against the installed jaxmarl, so a drift fails a test instead of misleading a prompt.

The adapter (`tfcaf.tasks.smax`) turns SMAX's raw world state into the *normalised, field-major*
layout these cards describe (U = allies + enemies units, T = 6 unit types, N allies, M enemies):

    ally_health [N] | enemy_health [M] | ally_x [N] | ally_y [N] | enemy_x [M] | enemy_y [M] |
    ally_cooldown [N] | enemy_cooldown [M] | ally_type_onehot [N*T] | enemy_type_onehot [M*T] |
    unit_team [U] | unit_type [U] | (ally_last_action [N*A], only with last_actions=True)

so S = 12 U (72 for 3m, same width as SMAX's own world state) plus N*A with last actions.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfcaf.tasks.card import AliveFlag, Feature, StateSlice, TaskCard

# SMAX defaults (jaxmarl/environments/smax/smax_env.py, SMAX.__init__).
UNIT_TYPES = ("marine", "marauder", "stalker", "zealot", "zergling", "hydralisk")
UNIT_HEALTH = (45.0, 125.0, 160.0, 150.0, 35.0, 80.0)
UNIT_ATTACK_RANGE = (5.0, 6.0, 6.0, 2.0, 2.0, 5.0)
UNIT_WEAPON_COOLDOWN = (0.61, 1.07, 1.87, 0.86, 0.5, 0.59)
UNIT_DAMAGE = (9.0, 10.0, 13.0, 8.0, 5.0, 12.0)
MAP_SIZE = 32.0
EPISODE_LIMIT = 100
N_MOVE_ACTIONS = 5
WIN_BONUS = 1.0
SMAC_REWARD_SCALE = 10.0
"""SMAX's best return is 2.0 (all enemy health + 1 win bonus); x10 gives SMAC's 20-point scale."""
FAR = 1.5
"""Distance reported when no pair applies (dead agent, no enemy alive); > sqrt(2), the map diagonal."""

MARINE, MARAUDER, STALKER, ZEALOT, ZERGLING, HYDRALISK = range(6)


@dataclass(frozen=True)
class SmaxMap:
    """One SMAX scenario: unit types per side (empty for SMACv2 maps, whose types are drawn per episode)."""

    name: str
    n_allies: int
    n_enemies: int
    ally_types: tuple[int, ...] = ()
    enemy_types: tuple[int, ...] = ()
    smacv2: bool = False

    @property
    def n_units(self) -> int:
        return self.n_allies + self.n_enemies

    @property
    def n_actions(self) -> int:
        return N_MOVE_ACTIONS + self.n_enemies

    @property
    def possible_ally_types(self) -> tuple[int, ...]:
        return tuple(range(len(UNIT_TYPES))) if self.smacv2 else tuple(sorted(set(self.ally_types)))

    @property
    def possible_enemy_types(self) -> tuple[int, ...]:
        return tuple(range(len(UNIT_TYPES))) if self.smacv2 else tuple(sorted(set(self.enemy_types)))


def _m(name: str, allies: tuple[int, ...], enemies: tuple[int, ...]) -> SmaxMap:
    return SmaxMap(name, len(allies), len(enemies), allies, enemies)


_S, _Z = (STALKER,), (ZEALOT,)
SMAX_MAPS: dict[str, SmaxMap] = {m.name: m for m in (
    _m("3m", (MARINE,) * 3, (MARINE,) * 3),
    _m("8m", (MARINE,) * 8, (MARINE,) * 8),
    _m("25m", (MARINE,) * 25, (MARINE,) * 25),
    _m("2s3z", _S * 2 + _Z * 3, _S * 2 + _Z * 3),
    _m("3s5z", _S * 3 + _Z * 5, _S * 3 + _Z * 5),
    _m("5m_vs_6m", (MARINE,) * 5, (MARINE,) * 6),
    _m("10m_vs_11m", (MARINE,) * 10, (MARINE,) * 11),
    _m("27m_vs_30m", (MARINE,) * 27, (MARINE,) * 30),
    _m("3s5z_vs_3s6z", _S * 3 + _Z * 5, _S * 3 + _Z * 6),
    _m("3s_vs_5z", _S * 3, _Z * 5),
    _m("6h_vs_8z", (HYDRALISK,) * 6, _Z * 8),
    SmaxMap("smacv2_5_units", 5, 5, smacv2=True),
    SmaxMap("smacv2_10_units", 10, 10, smacv2=True),
    SmaxMap("smacv2_20_units", 20, 20, smacv2=True),
)}

SMAC_MAPS_MISSING_FROM_SMAX = ("MMM", "MMM2", "corridor", "2s_vs_1sc", "2c_vs_64zg", "bane_vs_bane",
                               "so_many_baneling", "1c3s5z", "3s_vs_3z", "3s_vs_4z", "2m_vs_1z")


@dataclass(frozen=True)
class SmaxLayout:
    """Column offsets of the normalised state (see the module docstring)."""

    n: int
    m: int
    n_actions: int
    last_actions: bool = False

    @property
    def u(self) -> int:
        return self.n + self.m

    def offsets(self) -> dict[str, tuple[int, int]]:
        n, m, u, t = self.n, self.m, self.u, len(UNIT_TYPES)
        widths = [("ally_health", n), ("enemy_health", m), ("ally_x", n), ("ally_y", n), ("enemy_x", m),
                  ("enemy_y", m), ("ally_cooldown", n), ("enemy_cooldown", m), ("ally_type_onehot", n * t),
                  ("enemy_type_onehot", m * t), ("unit_team", u), ("unit_type", u)]
        if self.last_actions:
            widths.append(("ally_last_action", n * self.n_actions))
        out, at = {}, 0
        for name, width in widths:
            out[name] = (at, at + width)
            at += width
        return out

    @property
    def state_dim(self) -> int:
        return 12 * self.u + (self.n * self.n_actions if self.last_actions else 0)


def _type_names(types: tuple[int, ...]) -> str:
    counts: dict[int, int] = {}
    for t in types:
        counts[t] = counts.get(t, 0) + 1
    return " and ".join(f"{c} {UNIT_TYPES[t]}{'s' if c > 1 else ''}" for t, c in counts.items())


def _slices(lay: SmaxLayout) -> tuple[StateSlice, ...]:
    o, n, m, a = lay.offsets(), lay.n, lay.m, lay.n_actions
    type_list = ", ".join(f"{i} {name}" for i, name in enumerate(UNIT_TYPES))
    meanings = {
        "ally_health": ("health of ally (agent) i divided by its unit type's maximum; 0 means dead", 0.0, 1.0, True),
        "enemy_health": (f"health of enemy j (j = 0..{m - 1}) divided by its maximum; 0 means dead", 0.0, 1.0, False),
        "ally_x": (f"x position of ally i divided by the map width {MAP_SIZE:g} (clipped to [0, 1]); 0 when dead", 0.0, 1.0, True),
        "ally_y": (f"y position of ally i divided by the map height {MAP_SIZE:g} (clipped to [0, 1]); 0 when dead", 0.0, 1.0, True),
        "enemy_x": ("x position of enemy j divided by the map width; 0 when dead", 0.0, 1.0, False),
        "enemy_y": ("y position of enemy j divided by the map height; 0 when dead", 0.0, 1.0, False),
        "ally_cooldown": ("weapon cooldown of ally i as a fraction of its unit type's cooldown, clipped to [0, 1]; "
                          "0 means the weapon is ready (and 0 when dead)", 0.0, 1.0, True),
        "enemy_cooldown": ("weapon cooldown of enemy j as a fraction of its type's cooldown, clipped to [0, 1]", 0.0, 1.0, False),
        "ally_type_onehot": (f"{len(UNIT_TYPES)} one-hot unit-type bits per ally, ally-major "
                             f"(column start + 6*i + type; types: {type_list}); all 0 when dead", 0.0, 1.0, False),
        "enemy_type_onehot": ("6 one-hot unit-type bits per enemy, enemy-major; all 0 when dead", 0.0, 1.0, False),
        "unit_team": (f"team of each unit, allies first: 0 for the {n} allies, 1 for the {m} enemies (constant)", 0.0, 1.0, False),
        "unit_type": (f"unit type index of each unit, allies first ({type_list}); kept when dead", 0.0, float(len(UNIT_TYPES) - 1), False),
        "ally_last_action": (f"one-hot of each ally's previous action, ally-major ({a} columns per ally); "
                             "all 0 at the start of an episode", 0.0, 1.0, False),
    }
    out = []
    for name, (start, stop) in o.items():
        meaning, low, high, per_agent = meanings[name]
        out.append(StateSlice(name, start, stop, meaning, low, high, per_agent=per_agent))
    return tuple(out)


def _features(smap: SmaxMap, lay: SmaxLayout) -> tuple[Feature, ...]:
    """Per-agent features as torch expressions over global_state [B, S] -> [B, N]."""
    o, n = lay.offsets(), smap.n_allies
    g = "global_state"

    def cols(name: str, tail: str = "") -> str:
        start, stop = o[name]
        return f"{g}[:, {start}:{stop}{tail}]"

    alive = f"({cols('ally_health')} > 0)"
    alive_col, enemy_alive_row = f"({cols('ally_health', ', None')} > 0)", f"({g}[:, None, {o['enemy_health'][0]}:{o['enemy_health'][1]}] > 0)"
    ex, ey = o["enemy_x"], o["enemy_y"]
    dist = (f"torch.sqrt(({cols('ally_x', ', None')} - {g}[:, None, {ex[0]}:{ex[1]}]) ** 2"
            f" + ({cols('ally_y', ', None')} - {g}[:, None, {ey[0]}:{ey[1]}]) ** 2)")  # [B, N, M]
    types = smap.possible_ally_types
    ut = o["unit_type"][0]
    ranges = sorted({UNIT_ATTACK_RANGE[t] for t in types})
    if len(ranges) == 1:
        rng = f"{ranges[0] / MAP_SIZE!r}"
        rng_feature = f"{rng} + 0.0 * {cols('ally_health')}"
    else:
        terms = [f"({g}[:, {ut}:{ut + n}] == {t}).to({g}.dtype) * {UNIT_ATTACK_RANGE[t] / MAP_SIZE!r}" for t in types]
        rng_feature = " + ".join(terms)
        rng = "(" + " + ".join(f"({g}[:, {ut}:{ut + n}, None] == {t}).to({g}.dtype) * {UNIT_ATTACK_RANGE[t] / MAP_SIZE!r}"
                               for t in types) + ")"
    pair_ok = f"{alive_col} & {enemy_alive_row}"
    lo_rng, hi_rng = min(ranges) / MAP_SIZE, max(ranges) / MAP_SIZE
    dt = f"{g}.dtype"
    return (
        Feature("health", "own health as a fraction of the unit's maximum (0 = dead)", cols("ally_health"), 0.0, 1.0),
        Feature("alive", "1 if the agent is alive, else 0", f"{alive}.to({dt})", 0.0, 1.0),
        Feature("cooldown", "own weapon cooldown as a fraction of the unit type's cooldown (0 = ready)", cols("ally_cooldown"), 0.0, 1.0),
        Feature("weapon_ready", "1 if the agent is alive and its weapon can fire now, else 0",
                f"({alive} & ({cols('ally_cooldown')} <= 0)).to({dt})", 0.0, 1.0),
        Feature("pos_x", "own x position / map width (0 when dead)", cols("ally_x"), 0.0, 1.0),
        Feature("pos_y", "own y position / map height (0 when dead)", cols("ally_y"), 0.0, 1.0),
        Feature("attack_range", "own attack range / map width (from the unit type)", rng_feature, lo_rng, hi_rng),
        Feature("nearest_enemy_distance",
                f"distance to the nearest living enemy in map widths; {FAR} when the agent is dead or no enemy lives",
                f"torch.amin(torch.where({pair_ok}, {dist}, {FAR}), dim=2)", 0.0, FAR),
        Feature("enemies_in_range", "number of living enemies within the agent's attack range (0 when dead)",
                f"torch.sum(({pair_ok} & ({dist} < {rng})).to({dt}), dim=2)", 0.0, float(smap.n_enemies)),
        Feature("enemy_health_in_range",
                "summed health fraction of the living enemies within attack range (damage the agent can still deal)",
                f"torch.sum(({pair_ok} & ({dist} < {rng})).to({dt}) * {g}[:, None, {o['enemy_health'][0]}:{o['enemy_health'][1]}], dim=2)",
                0.0, float(smap.n_enemies)),
    )


def smax_card(map_name: str, last_actions: bool = False, smac_reward: bool = False) -> TaskCard:
    """The card of `smac_<map_name>`; `last_actions` / `smac_reward` describe the matching env options."""
    smap = SMAX_MAPS[map_name]
    n, m, a = smap.n_allies, smap.n_enemies, smap.n_actions
    lay = SmaxLayout(n, m, a, last_actions)
    scale = SMAC_REWARD_SCALE if smac_reward else 1.0
    if smap.smacv2:
        units = (f"the agents control {n} units against {m} enemy units; each episode draws unit types uniformly from "
                 f"{', '.join(UNIT_TYPES)} (enemies mirror the allies) and SMACv2-style start positions")
    else:
        units = f"the agents control {_type_names(smap.ally_types)} against {_type_names(smap.enemy_types)} of the enemy"
    suffix = ("+last_actions" if last_actions else "") + ("+smac_reward" if smac_reward else "")
    type_stats = "; ".join(f"{UNIT_TYPES[t]}: health {UNIT_HEALTH[t]:g}, damage {UNIT_DAMAGE[t]:g}, range {UNIT_ATTACK_RANGE[t]:g}, "
                           f"cooldown {UNIT_WEAPON_COOLDOWN[t]:g} s"
                           for t in sorted(set(smap.possible_ally_types) | set(smap.possible_enemy_types)))
    return TaskCard(
        name=f"smac_{map_name}{suffix}",
        family="smax",
        backend="jaxmarl SMAX",
        n_agents=n,
        state_dim=lay.state_dim,
        obs_dim=_obs_dim(n, m),
        n_actions=a,
        episode_limit=EPISODE_LIMIT,
        action_meanings=("move north", "move east", "move south", "move west", "stop (the only action of a dead agent)")
        + tuple(f"attack enemy {j} (available when alive, enemy {j} alive and within attack range)" for j in range(m)),
        reward=(f"shared team reward per step: the enemies' total health lost this step (each as a fraction of its maximum) "
                f"divided by {m}, plus {WIN_BONUS:g} when the last enemy dies while an ally lives"
                + (f"; everything multiplied by {scale:g} (SMAC's 20-point scale)" if smac_reward else "")
                + f". Best episode return {2 * scale:g}."),
        description=(f"SMAX map {map_name} (a SMAC-like battle simulated by JaxMARL, not StarCraft II): {units}, "
                     f"on a {MAP_SIZE:g} x {MAP_SIZE:g} map. The enemies follow a built-in heuristic (attack the closest). "
                     f"The episode ends when one side is eliminated or after {EPISODE_LIMIT} steps. Unit stats: {type_stats}. "
                     "Credit should go to agents that are alive, able to fire and near weak enemies; dead agents can only stop."),
        state_slices=_slices(lay),
        alive=AliveFlag(columns=tuple(range(n)), threshold=0.0, meaning="normalised health of ally i (ally_health)"),
        requires_igm=True,
        features=_features(smap, lay),
        install_hint="python3 -m pip install 'jaxmarl>=0.1' (pulls JAX; ~930 MB)",
        reward_range=(0.0, 2.0 * scale),
        notes=("SMAX, not SMAC: report results as SMAX.",
               "Differs from SMAC proper (e.g. SMAC 3m has obs 30, state 48, 9 actions, limit 60).",
               f"Episodes are truncated after {EPISODE_LIMIT} steps by tfcaf (SMAX alone would run one step more).",
               "The state is SMAX's world state normalised and reordered field-major by tfcaf; "
               "dead units have zero health, position, cooldown and type bits."),
    )


def _obs_dim(n: int, m: int) -> int:
    """SMAX unit_list observation width: 13 features per other unit, 10 own features."""
    return 13 * (n - 1) + 13 * m + 4 + len(UNIT_TYPES)


def parse_task_name(name: str) -> tuple[str, bool, bool]:
    """'smac_3m+last_actions' -> ('3m', True, False)."""
    base, *flags = name.split("+")
    return base.removeprefix("smac_"), "last_actions" in flags, "smac_reward" in flags
