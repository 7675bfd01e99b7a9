"""Plugins through entry points, one hook per kind (simonw/llm's model).

A third-party package adds tasks, LLM backends, training algorithms or mixers without touching tfcaf's
code by declaring entry points in its pyproject.toml::

    [project.entry-points."tfcaf.tasks"]
    my_tasks = "my_package.plugin:register_tasks"        # register_tasks(register): register(Task)
    [project.entry-points."tfcaf.backends"]
    my_llm = "my_package.plugin:register_backends"       # register(BackendSpec)
    [project.entry-points."tfcaf.algorithms"]
    my_algo = "my_package.plugin:register_algorithms"    # register(AlgoSpec)
    [project.entry-points."tfcaf.mixers"]
    my_mixer = "my_package.plugin:register_mixers"       # register(MixerSpec)

Each hook is a function that receives the kind's `register` callable and calls it once per item. The
built-in families use the very same hooks (`tasks.registry.register_builtin_tasks`, ...): each registry
module calls `load(kind, builtin_hook, register)`, which runs the built-in hook first and then every
installed plugin's hook. (Built-ins are called directly rather than through tfcaf's own entry points so
that a checkout whose installed metadata is stale still has them.)

A broken plugin (import error, exception in its hook, a name that is already registered, a wrong type)
costs one line on stderr and is skipped as a whole; it never hides the built-ins or another plugin.
`tfcaf plugins` lists what loaded and what was skipped. See examples/tfcaf-example-plugins/.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable

KINDS = {"tasks": "tfcaf.tasks", "backends": "tfcaf.backends", "algorithms": "tfcaf.algorithms", "mixers": "tfcaf.mixers"}
"""Plugin kind -> entry-point group."""


@dataclass(frozen=True)
class PluginRecord:
    """What one entry point contributed (or why it was skipped)."""

    kind: str
    name: str
    """Entry-point name."""
    value: str
    """'module:function' the entry point names."""
    distribution: str
    items: tuple[str, ...] = ()
    """Names it registered."""
    error: str = ""
    """One line: why it was skipped ('' when it loaded)."""


RECORDS: list[PluginRecord] = []
"""Every plugin entry point seen in this process, in load order."""


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\r", " ").replace("\n", " ")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:300]


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    try:
        return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)
    except Exception as err:  # a corrupt dist-info elsewhere on sys.path must not break tfcaf
        print(f"tfcaf: warning: cannot read entry points of {group}: {_one_line(err)}", file=sys.stderr)
        return []


def load(kind: str, builtin: Callable[[Callable[[Any], Any]], None], register: Callable[[Any], Any],
         name_of: Callable[[Any], str], item_type: type, registry: dict[str, Any]) -> None:
    """Run the built-in hook, then every installed plugin's hook for `kind`.

    A plugin's items are collected first and registered only when its hook returned cleanly, each item
    has the right type and no name is taken (in `registry` or twice by the plugin): all or nothing.
    """
    builtin(register)
    for ep in _entry_points(KINDS[kind]):
        dist = getattr(getattr(ep, "dist", None), "name", "") or "?"
        staged: list[Any] = []
        done: list[str] = []
        try:
            hook = ep.load()
            hook(staged.append)
            names: list[str] = []
            for item in staged:
                if not isinstance(item, item_type):
                    raise TypeError(f"registered a {type(item).__name__}, expected {item_type.__name__}")
                name = name_of(item)
                if name in registry or name in names:
                    raise ValueError(f"{kind[:-1]} '{name}' registered twice")
                names.append(name)
            for item in staged:
                register(item)
                done.append(name_of(item))
        except Exception as err:
            message = _one_line(err)
            RECORDS.append(PluginRecord(kind, ep.name, ep.value, dist, tuple(done), message))
            print(f"tfcaf: warning: plugin '{ep.name}' ({KINDS[kind]}, from {dist}) skipped: {message}", file=sys.stderr)
            continue
        RECORDS.append(PluginRecord(kind, ep.name, ep.value, dist, tuple(done)))


def register_into(registry: dict[str, Any], what: str, name_of: Callable[[Any], str]) -> Callable[[Any], Any]:
    """A `register` for a plain dict registry that refuses a name twice (a plugin cannot shadow a built-in)."""

    def register(item: Any) -> Any:
        name = name_of(item)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} name must be a non-empty string")
        if name in registry:
            raise ValueError(f"{what} '{name}' registered twice")
        registry[name] = item
        return item

    return register


def records() -> list[dict[str, Any]]:
    """The plugin records seen so far as JSON-ready dicts (each registry loads its plugins when imported;
    `tfcaf plugins` imports all four first)."""
    return [{"kind": r.kind, "name": r.name, "value": r.value, "distribution": r.distribution,
             "items": list(r.items), "error": r.error} for r in RECORDS]
