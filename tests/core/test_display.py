"""tfcaf.display: untrusted text is shown inert (no control sequences, no Rich markup)."""

from __future__ import annotations

import io
import re
import unicodedata

from hypothesis import given, settings, strategies as st
from rich.console import Console

from tfcaf.display import inert, inert_markup, inert_text, source_lines


def _rendered(renderable) -> str:
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="truecolor", width=200, highlight=False).print(renderable)
    return buf.getvalue()


def test_controls_are_escaped():
    assert inert("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert inert("\x9b31m") == "\\x9b31m"  # C1 CSI
    assert inert("x\u202ey\u2066z\u200b") == "x\\u202ey\\u2066z\\u200b"
    assert inert("del\x7f") == "del\\x7f"
    assert inert("l1\nl2\r") == "l1\\x0al2\\x0d"
    assert inert("l1\nl2\tx", keep_newlines=True) == "l1\nl2\tx"
    assert inert("\u2028\x85\x0c") == "\\u2028\\x85\\x0c"
    assert inert("héllo ✓ ∑") == "héllo ✓ ∑"  # printable unicode stays readable


def test_hostile_str_does_not_stop_the_message():
    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    assert inert(Bad()) == "<unprintable Bad>"


def test_markup_is_never_interpreted():
    hostile = "[bold green]accepted[/bold green] [link=https://evil.example]x[/link] [/x]"
    out = _rendered(inert_text(hostile))
    assert "[bold green]accepted[/bold green]" in out and "[/x]" in out
    assert "\x1b]8;" not in out  # no OSC 8 hyperlink
    out = _rendered("verdict: " + inert_markup(hostile))
    assert "[/x]" in out and "\x1b]8;" not in out


def test_source_lines_split_only_where_python_does():
    src = "def f(x):\n    # note\x0cq = x.sum()\n    return x\u2028y\n"
    lines = source_lines(src)
    assert len(lines) == src.count("\n") + 1
    assert lines[1] == "    # note\\x0cq = x.sum()"
    assert "\\u2028" in lines[2]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_no_raw_control_character_survives(text):
    out = _rendered(inert_text(text, "bold"))
    body = re.sub(r"\x1b\[[0-9;]*m", "", out).replace("\n", "")  # Rich's own styling (SGR) only
    assert not [ch for ch in body if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")], repr(out)
    assert "\x1b" not in inert(text) and "\r" not in inert(text) and "\n" not in inert(text)
