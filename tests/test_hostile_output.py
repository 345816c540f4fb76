"""What reaches the terminal goes through the same filter as text on ingest (issue 19):
a right-to-left override, BEL, a zero-width space or an ANSI escape in data cannot change
what the terminal shows, in tables, plain prints, logs, progress bars or JSON."""

from __future__ import annotations

import io
import json
import unicodedata

import pytest
import typer
from rich.progress import Progress
from rich.table import Table

from agent.cleantext import clean_text, invisible_at
from agent.cli import common
from agent.cli.common import CleanConsole

SPOOF = "evil\u202etxt.exe\x07\u200b\x1b[2J\u2066x\U000e0041"
SHOWN = "eviltxt.exe[2Jx"
"""What is left to show of SPOOF: its visible characters."""


def rendered(print_with: object) -> str:
    out = io.StringIO()
    console = CleanConsole(file=out, force_terminal=True, width=80)
    print_with(console)  # type: ignore[operator]
    return out.getvalue()


def assert_clean(text: str) -> None:
    """No character of SPOOF's invisible ones, and no escape but rich's own styling (SGR)."""
    for char in "\u202e\x07\u200b\u2066\U000e0041":
        assert char not in text, repr(char)
    assert "\x1b[2J" not in text


@pytest.mark.parametrize(
    "show",
    [
        lambda c: c.print(SPOOF),
        lambda c: c.print(f"[bold]{SPOOF}[/]"),
        lambda c: c.log(SPOOF),
        lambda c: c.print(_table()),
        lambda c: _progress(c),
    ],
    ids=["print", "markup", "log", "table", "progress"],
)
def test_every_kind_of_output_is_cleaned(show: object) -> None:
    text = rendered(show)
    assert_clean(text)
    assert "eviltxt.exe" in text


def test_plain_rich_would_have_let_it_through() -> None:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, width=80).print(_table())
    assert "\u202e" in out.getvalue() and "\x1b[2J" in out.getvalue()


def test_the_cli_console_is_the_clean_one() -> None:
    assert isinstance(common.console, CleanConsole)


def test_fail_messages_are_cleaned(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        common.fail(f"no such user {SPOOF!s}")
    err = capsys.readouterr().err
    assert_clean(err)
    assert "no such user eviltxt.exe" in " ".join(err.split())


def test_json_output_escapes_them(capsys: pytest.CaptureFixture[str]) -> None:
    common.print_json({"title": SPOOF})
    out = capsys.readouterr().out
    assert out.isascii() and "\x07" not in out and "\x1b" not in out
    assert json.loads(out) == {"title": SPOOF}  # escaped, not lost: a script sees the data


def test_clean_text_keeps_newlines_and_tabs_unless_one_line() -> None:
    assert clean_text(SPOOF) == SHOWN
    assert clean_text("a\tb\r\nc\u2028d") == "a\tb\nc\nd"
    assert clean_text("a\tb\nc", keep_newlines=False) == "a b c"


def test_every_control_and_format_character_of_this_python_is_removed() -> None:
    """The character class is written out; this holds it to the Unicode database."""
    missing = [
        f"U+{cp:04X}"
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs")
        and chr(cp) not in "\t\n"
        and clean_text(chr(cp)) != ""
    ]
    assert missing == []


def test_invisible_at_finds_what_an_id_must_not_hold() -> None:
    assert invisible_at("user\u200b1") == 4
    assert invisible_at("user\t1") == 4
    assert invisible_at("user 1") is None


def _table() -> Table:
    table = Table("title")
    table.add_row(SPOOF)
    return table


def _progress(console: CleanConsole) -> None:
    with Progress(console=console) as progress:
        progress.add_task(SPOOF, total=1)
