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
import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from tfcaf.errors import UsageError

CONFIG_FILE = "tfcaf.toml"


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
    critic: bool = True
    """Ask the evaluator LLM (the same backend) to score accepted candidates and give advice."""
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
    """A tuned generator from `tfcaf tune` (see `tfcaf generators`): served offline through the transformers backend."""
    device: str = "cpu"
    """torch device of the transformers backend and tuned generators: cpu, cuda, cuda:1."""

    @property
    def resolved_mode(self) -> str:
        if self.mode:
            return self.mode
        from tfcaf.generator.backends import get_backend_spec

        return get_backend_spec(self.resolved_backend).default_mode

    @property
    def resolved_backend(self) -> str:
        """The backend that serves: a tuned --generator is served by the transformers backend."""
        return "transformers" if self.generator else self.backend

    @property
    def resolved_max_tokens(self) -> int:
        if self.max_tokens:
            return self.max_tokens
        return 200 if self.resolved_mode == "spec" else 1024

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
        if not 0.0 <= self.temperature <= 2.0 or not 0.0 < self.top_p <= 1.0:
            raise UsageError("--temperature must be in [0, 2] and --top-p in (0, 1].")
        if self.generator is not None and self.backend not in ("local", "transformers"):
            raise UsageError("--generator serves a tuned local model: drop --backend (or use --backend transformers).")
        if self.timeout_s <= 0 or self.time_budget_s < 0 or self.fitness_steps < 0:
            raise UsageError("--timeout-s must be positive; --time-budget-s and --fitness-steps non-negative.")
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    if name in ("k", "rounds", "repairs", "seed", "fitness_steps", "max_retries", "threads", "max_tokens"):
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
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"config file {path} is not valid TOML: {err}.") from None
    table = data.get("generate", {})
    if not isinstance(table, dict):
        raise UsageError(f"config file {path}: [generate] must be a table.")
    known = {f.name for f in fields(GenerateConfig)}
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
        names = [f"TFCAF_{f.name.upper()}"] + (["OPENAI_BASE_URL"] if f.name == "base_url" else [])
        if f.name == "store":
            names = ["TFCAF_STORE"]
        for var in names:
            if env.get(var):
                values[f.name] = _convert(f.name, env[var], f"environment variable {var}")
                sources[f.name] = f"env {var}"
                break
    known = {f.name for f in fields(GenerateConfig)}
    for name, value in flags.items():
        if name not in known:
            raise ValueError(f"unknown config field {name}")
        if value is not None:
            values[name] = value
            sources[name] = "flag"
    return GenerateConfig(**values).check(), sources
