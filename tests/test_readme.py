"""The README is a front door: every `soundalike` command it shows names a real command with real options, the
pages it links to exist, and it stays short enough to read."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from soundalike.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def soundalike_commands(text: str) -> list[list[str]]:
    """Each `soundalike ...` invocation in the text's shell blocks, as argument lists (comments dropped, lines
    continued with a backslash joined, `&&` chains split, variables set before the command left out)."""
    out = []
    for block in shell_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                args, tokens = tokens[:cut], tokens[cut + 1 :]
                while args and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", args[0]):
                    args = args[1:]
                if args and Path(args[0]).name == "soundalike":
                    out.append(args[1:])
    return out


def options_of(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for p in command.params:
        names.update(p.opts)
        names.update(p.secondary_opts)
    return names


COMMANDS = soundalike_commands(README)


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 15
    assert {args[0] for args in COMMANDS} >= {"index", "search", "serve", "find", "info"}


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_names_a_real_command_and_real_options(args):
    command = main.get_command(click.Context(main), args[0])
    assert command is not None, f"README shows `soundalike {args[0]}`, which is not a command"
    known = options_of(command)
    for token in args[1:]:
        if token.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", token):
            assert token.split("=")[0] in known, f"`soundalike {args[0]}` has no option {token}"


def test_the_command_table_lists_every_command():
    table = set(re.findall(r"^\| `([a-z]+)[ `]", README, flags=re.M))
    assert table == set(main.commands), (set(main.commands) - table, table - set(main.commands))


def test_every_linked_page_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links
    for link in links:
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link
    for page in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{page.name} links to {link}"


def test_the_readme_is_short():
    assert len(README.splitlines()) < 250
