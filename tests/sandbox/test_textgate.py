"""Layer 1 alone: extraction of exactly one python module from an LLM response."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcaf.sandbox.textgate import MAX_TEXT_CHARS, extract_source
from tfcaf.sandbox.verdict import Rejection

CODE = "def QLLMNetwork(agents_q, global_state):\n    return agents_q.sum(-1, keepdim=True)\n"


def test_single_fence_with_prose() -> None:
    assert extract_source(f"Here you go:\n```python\n{CODE}```\nThis is monotone.") == CODE


@pytest.mark.parametrize("tag", ["", "py", "Python", "python3"])
def test_python_tags(tag: str) -> None:
    assert extract_source(f"```{tag}\n{CODE}```") == CODE


def test_bare_module() -> None:
    assert extract_source(CODE) == CODE


def test_tilde_fence_and_longer_fence() -> None:
    assert extract_source(f"~~~python\n{CODE}~~~\n") == CODE
    assert extract_source(f"````python\n{CODE}````\n") == CODE


@pytest.mark.parametrize("text,needle", [
    (f"```python\n{CODE}```\n```python\n{CODE}```", "exactly one"),
    (f"```js\n{CODE}```", "exactly one"),
    (f"```python\n{CODE}", "unclosed"),
    ("", "empty"),
    ("   \n\n", "empty"),
    ("I refuse.", "syntax error"),
    ("```python\n\n```", "empty"),
    ("x = 1\x00", "NUL"),
    (CODE.replace("agents_q.sum", "agents_q.s\u200bum"), "U+200B"),
    (CODE + "# \u202e evil\n", "bidirectional"),
    (CODE.replace("return", "\uff52eturn"), "NFKC"),
    (CODE.replace("agents_q, global", "\u0430gents_q, global"), "mixes scripts"),
    ("def QLLMNetwork(agents_q, global_state):\n    \u0445 = agents_q.clamp(-1, 1)\n    return agents_q.sum(-1, keepdim=True)\n",
     "must be plain ASCII"),
    (CODE + "# a\x0cq = 1\n", "form feed"),
    (CODE + "# a\rq = 1\n", "carriage return"),
    (CODE + "# a\x0bq = 1\n", "vertical tab"),
    (CODE + "# a\x85q = 1\n", "NEL"),
    (CODE + "# a\u2028q = 1\n", "line separator"),
    (CODE + "# a\u2029q = 1\n", "paragraph separator"),
])
def test_rejections(text: str, needle: str) -> None:
    with pytest.raises(Rejection) as info:
        extract_source(text)
    assert info.value.status == "text" and info.value.stage == "text"
    assert needle in info.value.reason


def test_single_script_non_ascii_identifier_is_refused_but_unicode_comments_are_fine() -> None:
    src = "def QLLMNetwork(agents_q, global_state):\n    \u03b1\u03b2 = agents_q\n    return \u03b1\u03b2.sum(-1, keepdim=True)\n"
    with pytest.raises(Rejection, match="ASCII"):
        extract_source(src)
    ok = "def QLLMNetwork(agents_q, global_state):\n    # Σ_i Q_i — VDN ✓\n    return agents_q.sum(-1, keepdim=True)  # [B, 1]\n"
    assert extract_source(ok) == ok


def test_size_caps() -> None:
    with pytest.raises(Rejection, match="too long"):
        extract_source("#" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(Rejection, match="too long"):
        extract_source("x = 1\n" * 5000)


def test_non_text_input() -> None:
    with pytest.raises(Rejection):
        extract_source(b"bytes")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_fuzz_random_text_never_crashes(text: str) -> None:
    try:
        out = extract_source(text)
    except Rejection as rej:
        assert rej.status == "text" and rej.reason
    else:
        assert isinstance(out, str) and out.strip()


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["```", "```python", "\n", CODE, "prose ", "~~~", "`"]), max_size=12))
def test_fuzz_fence_soup_never_crashes(parts: list[str]) -> None:
    try:
        extract_source("".join(parts))
    except Rejection as rej:
        assert rej.reason
