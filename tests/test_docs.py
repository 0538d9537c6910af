"""The README against the code: its pages table, its red-flag rules, its CLI commands and
its quick-start scripts. Prose can drift silently; these tables and commands cannot."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from ponder_app import registry
from ponder_parse import cli
from ponder_parse.analysis.red_flags import RULES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under `## title`, up to the next second-level heading."""
    parts = re.split(r"^## ", README, flags=re.MULTILINE)
    found = [p for p in parts if p.splitlines()[0].strip() == title]
    assert len(found) == 1, f"README has {len(found)} sections '## {title}'"
    return found[0]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in `text`: its body rows (header and rule left out) as cells."""
    out: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            out.append(current[2:])
            current = []
    return out


def code_lines(text: str) -> list[str]:
    """The lines inside the fenced code blocks of `text`, comments cut off."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_pages_table_lists_the_registry_in_order() -> None:
    pages = tables(section("The pages"))[0]
    assert [row[0] for row in pages] == [p.title for p in registry.PAGES]


def test_the_red_flag_rules_table_matches_the_rules() -> None:
    rules = next(t for t in tables(section("The pages")) if t and t[0][0].startswith("`"))
    documented = {(name.strip("`"), title, severity) for name, title, severity in rules}
    assert len(documented) == len(rules), "a rule is listed twice"
    assert documented == {(name, r.title, r.severity) for name, r in RULES.items()}


def cli_commands() -> list[str]:
    return [line for line in code_lines(README) if line.startswith("ponder-parse ")]


def test_the_readme_shows_cli_commands() -> None:
    assert cli_commands(), "no `ponder-parse ...` line in the README's code blocks"


@pytest.mark.parametrize("line", cli_commands())
def test_readme_cli_commands_parse(line: str) -> None:
    """Each command names a real subcommand and passes arguments it accepts."""
    argv = shlex.split(line)[1:]
    try:
        args = cli.parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`{line}` does not parse (exit {exc.code})")
    assert args.command == argv[0]


def test_quick_start_scripts_exist() -> None:
    """Every command of the quick start starts a script of the repository (after any
    `NAME=value` environment settings), and that script can be run."""
    lines = code_lines(section("Quick start"))
    assert lines
    for line in lines:
        words = [w for w in shlex.split(line) if not re.fullmatch(r"[A-Z_]+=.*", w)]
        script = ROOT / words[0]
        assert words[0].startswith("./") and script.is_file(), f"{line!r}: no {words[0]}"
        assert os.access(script, os.X_OK), f"{words[0]} is not executable"
