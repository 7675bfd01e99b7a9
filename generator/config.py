"""The generate config: a frozen dataclass, one docstring per field, resolved from four sources.

Precedence (highest first): command-line flag > environment variable > config file > default.
Environment variables are `TFCAF_<FIELD>` (e.g. `TFCAF_ROUNDS=3`), plus `OPENAI_BASE_URL` for
`base_url`. The config file is TOML with a `[generate]` table: `--config FILE`, else `./tfcaf.toml`
when present. `resolve()` returns the config and, per field, where its value came from
(`tfcaf generate --show-config` prints that table).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from tfcaf.errors import UsageError

CONFIG_FILE = "tfcaf.toml"
DERIVED = frozenset({"send_api_key"})
"""Fields resolve() computes; a config file or the environment cannot set them."""
USER_CONFIG = "tfcaf/config.toml"
"""The user's own config, under $XDG_CONFIG_HOME (default ~/.config): `[secrets] trusted_base_urls = [...]`."""

DEPRECATED_FIELDS = {"critic": "judge"}
"""Old setting name -> new name (accepted for one release, with a deprecation line on stderr)."""


def deprecation(old: str, new: str, where: str) -> None:
    """Print one deprecation line on stderr."""
    import sys

    print(f"tfcaf: deprecated: {where} '{old}' is now '{new}' (the old name goes away in the next release).", file=sys.stderr)


def upgrade_fields(values: Mapping[str, Any], where: str, warn: bool = True) -> dict[str, Any]:
    """Rename deprecated setting names in a mapping (a config file table, a stored run config)."""
    out = dict(values)
    for old, new in DEPRECATED_FIELDS.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
            if warn:
                deprecation(old, new, where)
    return out


@dataclass(frozen=True)
class GenerateConfig:
    """Everything `tfcaf generate` needs; derived values are properties, never mutations."""

    task: str = ""
    """Task name from the registry (`tfcaf tasks`), e.g. smac_3m."""
    backend: str = "local"
    """LLM backend: local (embedded SmolLM2, offline), openai (any OpenAI-compatible endpoint) or transformers (a local model directory)."""
    model: str | None = None
    """Model: the endpoint's model name (openai), a .gguf path (local; default SmolLM2-135M) or a model directory (transformers)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint URL (openai backend), e.g. http://127.0.0.1:8080/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable that holds the API key (openai backend)."""
    mode: str | None = None
    """code (the LLM writes QLLMNetwork) or spec (a JSON credit spec rendered into code); default spec for local, code otherwise."""
    k: int = 3
    """Candidates per round."""
    rounds: int = 2
    """Rounds; each later round is seeded with the selected candidate and the evaluator's advice."""
    repairs: int = 1
    """Repair attempts per rejected candidate, each feeding the failure back."""
    temperature: float = 0.8
    """Sampling temperature of the coder."""
    top_p: float = 0.95
    """Nucleus sampling of the coder."""
    max_tokens: int | None = None
    """Tokens per answer; default 200 in spec mode, 1024 in code mode."""
    seed: int = 0
    """Base seed: every request's seed derives from it, so a re-run asks the same questions (and hits the cache)."""
    judge: bool = True
    """Ask the judge (the evaluator LLM, same backend) to score accepted candidates and give advice (`--critic` is a deprecated alias)."""
    goals: str = ""
    """Goals every coder prompt requests, comma-separated goal ids (see `tfcaf dataset goals`); empty = the task's defaults, 'none' = no goal block."""
    fitness_steps: int = 0
    """Optional short-training fitness per accepted candidate, in environment steps (0 = off; needs the trainer)."""
    timeout_s: float = 60.0
    """Per-request timeout in seconds (openai backend)."""
    max_retries: int = 3
    """Retries after a 429, a 5xx, a time-out or a refused connection (openai backend)."""
    threads: int = 1
    """CPU threads for the embedded model and for vetting."""
    time_budget_s: float = 180.0
    """Stop starting new LLM requests after this many seconds once a candidate has been accepted (0 = no limit); keeps the embedded default within 5 minutes on a busy 2-core CPU."""
    cache: bool = True
    """Serve repeated requests from the response cache in <store>/cache/llm."""
    price_prompt: float = 0.0
    """Price in USD per million prompt tokens (for the cost column; 0 = free)."""
    price_completion: float = 0.0
    """Price in USD per million completion tokens."""
    store: str | None = None
    """Store directory (default $TFCAF_STORE or ./.tfcaf)."""
    generator: str | None = None
    """A tuned generator from `tfcaf tune` (see `tfcaf generators`), served offline: through llama.cpp (its base GGUF + LoRA adapter.gguf) when tuned on a GGUF base, else (or with --backend transformers) through the transformers backend."""
    device: str = "cpu"
    """Device: the torch device of the transformers backend (cpu, cuda, cuda:1); for the local backend cuda[:N] offloads every layer to that GPU (needs a CUDA build of llama.cpp)."""
    context: int = 8192
    """Context window in tokens of the local backend (llama.cpp), shared by its two slots (coder and judge)."""
    send_api_key: bool = True
    """Derived, never set by a file or the environment: false when base_url or api_key_env came from a tfcaf.toml auto-loaded from the working directory (and the URL is not in trusted_base_urls of the user's own ~/.config/tfcaf/config.toml); the API key is then not sent."""

    @property
    def resolved_mode(self) -> str:
        if self.mode:
            return self.mode
        if self.generator:  # tuned generators are tuned for code mode by default (`tfcaf tune --mode`)
            return "code"
        from tfcaf.generator.backends import get_backend_spec

        return get_backend_spec(self.resolved_backend).default_mode

    @property
    def resolved_backend(self) -> str:
        """The backend asked for. A tuned --generator is served by llama.cpp ('local') unless --backend
        transformers is given or llama.cpp cannot serve it (see session.backend_settings)."""
        if self.generator:
            return "transformers" if self.backend == "transformers" else "local"
        return self.backend

    @property
    def resolved_max_tokens(self) -> int:
        if self.max_tokens:
            return self.max_tokens
        return 200 if self.resolved_mode == "spec" else 1024

    def resolved_goals(self, card: Any) -> list[str]:
        """The goal ids the prompts request (validated)."""
        from tfcaf.evaluator.goals import default_goals, parse_goal

        text = (self.goals or "").strip()
        if text.lower() == "none":
            return []
        if not text:
            return default_goals(card)
        out = [g.strip() for g in text.split(",") if g.strip()]
        for g in out:
            try:
                parse_goal(g)
            except ValueError as err:
                raise UsageError(f"--goals: {err}.") from None
            if card is not None and g.startswith("uses_feature:") and g.partition(":")[2] not in {f.name for f in card.features}:
                known = ", ".join(f.name for f in card.features) or "none"
                raise UsageError(f"--goals: task {card.name} has no feature '{g.partition(':')[2]}' (its features: {known}).")
        return out

    def check(self) -> "GenerateConfig":
        """Raise UsageError on an impossible setting; returns self."""
        from tfcaf.generator.backends import get_backend_spec

        if not self.task:
            raise UsageError("no task given: pass --task NAME (see `tfcaf tasks`).")
        get_backend_spec(self.backend)
        if self.mode not in (None, "code", "spec"):
            raise UsageError(f"--mode must be code or spec, got '{self.mode}'.")
        for name, lo, hi in (("k", 1, 64), ("rounds", 1, 20), ("repairs", 0, 10), ("threads", 1, 256), ("max_retries", 0, 20)):
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise UsageError(f"--{name.replace('_', '-')} must be between {lo} and {hi}, got {value}.")
        for name in ("temperature", "top_p", "timeout_s", "time_budget_s", "price_prompt", "price_completion"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value!r}.")
        if self.price_prompt < 0 or self.price_completion < 0:
            raise UsageError("--price-prompt and --price-completion must be >= 0.")
        if not 0.0 <= self.temperature <= 2.0 or not 0.0 < self.top_p <= 1.0:
            raise UsageError("--temperature must be in [0, 2] and --top-p in (0, 1].")
        self.resolved_goals(None)
        if self.generator is not None and self.backend not in ("local", "transformers"):
            raise UsageError("--generator serves a tuned local model: drop --backend (or use --backend transformers).")
        check_device_name(self.device)
        if isinstance(self.context, bool) or not isinstance(self.context, int) or not MIN_CONTEXT <= self.context <= MAX_CONTEXT:
            raise UsageError(f"--context must be an integer between {MIN_CONTEXT} and {MAX_CONTEXT} tokens, got {self.context!r}.")
        if self.timeout_s <= 0 or self.time_budget_s < 0 or self.fitness_steps < 0:
            raise UsageError("--timeout-s must be positive; --time-budget-s and --fitness-steps non-negative.")
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MIN_CONTEXT, MAX_CONTEXT = 512, 1 << 20
"""Bounds of --context (tokens)."""


def check_device_name(device: str) -> None:
    """UsageError unless `device` reads cpu, cuda, cuda:N or mps (whether that device exists is the
    backend's check, when it loads the model)."""
    import re

    if not isinstance(device, str) or not re.fullmatch(r"cpu|mps|cuda(:[0-9]{1,3})?", device):
        raise UsageError(f"--device must be cpu, cuda, cuda:N or mps, got {device!r}.")


@lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """Field name -> its docstring (read from this module's source), for --help and --show-config."""
    tree = ast.parse(inspect.getsource(GenerateConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(getattr(nxt, "value", None), ast.Constant) and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _convert(name: str, value: Any, origin: str) -> Any:
    """Coerce a file/env value to the field's type; UsageError naming the origin on failure."""
    default = {f.name: f.default for f in fields(GenerateConfig)}[name]
    kind = type(default) if default is not None else str
    if name in ("k", "rounds", "repairs", "seed", "fitness_steps", "max_retries", "threads", "max_tokens", "context"):
        kind = int
    try:
        if value is None:
            return None
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, float):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise UsageError(f"{origin}: '{name}' must be a {kind.__name__}, got {value!r}.") from None


def load_file(path: Path) -> dict[str, Any]:
    """The `[generate]` table of a TOML config file."""
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise UsageError("reading a config file on Python 3.10 needs the package 'tomli' (pip install tomli).") from None
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read the config file {path}: {err.strerror}.") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {err.start}).") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"config file {path} is not valid TOML: {err}.") from None
    table = data.get("generate", {})
    if not isinstance(table, dict):
        raise UsageError(f"config file {path}: [generate] must be a table.")
    table = upgrade_fields(table, f"config file {path}: setting")
    known = {f.name for f in fields(GenerateConfig)} - DERIVED
    unknown = sorted(set(table) - known)
    if unknown:
        raise UsageError(f"config file {path}: unknown setting(s) {', '.join(unknown)} in [generate]; known: {', '.join(sorted(known))}.")
    return table


def resolve(flags: Mapping[str, Any], config_file: str | os.PathLike | None = None,
            env: Mapping[str, str] | None = None) -> tuple[GenerateConfig, dict[str, str]]:
    """Merge defaults < config file < environment < flags (flags that are None were not given).

    Returns the checked config and {field: 'default' | 'config file PATH' | 'env NAME' | 'flag'}.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = {f.name: "default" for f in fields(GenerateConfig)}
    path = Path(config_file) if config_file else (Path(CONFIG_FILE) if Path(CONFIG_FILE).is_file() else None)
    if path is not None:
        for name, value in load_file(path).items():
            values[name] = _convert(name, value, f"config file {path}")
            sources[name] = f"config file {path}"
    for f in fields(GenerateConfig):
        if f.name in DERIVED:
            continue
        names = [f"TFCAF_{f.name.upper()}"] + (["OPENAI_BASE_URL"] if f.name == "base_url" else [])
        if f.name == "store":
            names = ["TFCAF_STORE"]
        names += [f"TFCAF_{old.upper()}" for old, new in DEPRECATED_FIELDS.items() if new == f.name]
        for var in names:
            if env.get(var):
                if var.lower().removeprefix("tfcaf_") in DEPRECATED_FIELDS:
                    deprecation(var, f"TFCAF_{f.name.upper()}", "environment variable")
                values[f.name] = _convert(f.name, env[var], f"environment variable {var}")
                sources[f.name] = f"env {var}"
                break
    known = {f.name for f in fields(GenerateConfig)} - DERIVED
    for name, value in flags.items():
        if name not in known:
            raise ValueError(f"unknown config field {name}")
        if value is not None:
            values[name] = value
            sources[name] = "flag"
    auto = config_file is None and path is not None  # found in the working directory, not named by the user
    untrusted = [name for name in ("base_url", "api_key_env") if auto and sources[name].startswith("config file")]
    if untrusted and values.get("base_url") not in trusted_base_urls(env):
        values["send_api_key"] = False
        sources["send_api_key"] = f"derived: {' and '.join(untrusted)} from the auto-loaded {path}"
    else:
        sources["send_api_key"] = "derived"
    return GenerateConfig(**values).check(), sources


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user's own config file ($XDG_CONFIG_HOME/tfcaf/config.toml, default ~/.config/...)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / USER_CONFIG


def trusted_base_urls(env: Mapping[str, str] | None = None) -> set[str]:
    """Endpoints the user approved, in their own config, to receive the API key even when a working
    directory's tfcaf.toml names them (`[secrets] trusted_base_urls = ["https://..."]`). Unreadable or
    malformed: none."""
    path = user_config_path(env)
    try:
        import tomllib  # type: ignore[import-not-found]
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return set()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return set()
    urls = data.get("secrets", {}).get("trusted_base_urls", []) if isinstance(data.get("secrets"), dict) else []
    return {u for u in urls if isinstance(u, str)} if isinstance(urls, list) else set()
