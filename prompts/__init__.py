"""Prompt templates (Jinja, *.j2) and the one environment that renders them (StrictUndefined).

Each stage renders its own prompts with `render` (the generator: system/generate/spec/refine/repair,
the evaluator's judge: evaluate). LLM text only ever enters a template as a variable.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

ENTRY_POINT_VAR = "entry_point"


@lru_cache(maxsize=1)
def environment() -> Any:
    """The Jinja environment over the packaged templates (StrictUndefined, no autoescape: plain text)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("tfcaf.prompts", "."),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **variables: Any) -> str:
    """Render template `name` (e.g. 'generate.j2'); raises jinja2.UndefinedError on a missing variable."""
    from tfcaf.contract import ENTRY_POINT

    return environment().get_template(name).render(entry_point=ENTRY_POINT, **variables).strip() + "\n"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (with '...')."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
