"""Every command's --help, and user errors printed verbatim (brackets are text, not markup)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.cli.common import user_errors
from harness.errors import HarnessError


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_every_command_explains_itself():
    runner = CliRunner()
    commands = _commands(typer.main.get_command(app))
    assert ("grade",) in commands and ("report",) in commands and ("zoo", "build") in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], prog_name="harness")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: harness" in result.output and len(result.output) > 200, path


def test_a_user_error_is_one_line_with_its_brackets(capsys):
    @user_errors
    def fails() -> None:
        raise HarnessError("[[line]] 2: share 1.5 is outside [0, 1]", path="r.toml", fix="[x]")

    try:
        fails()
    except typer.Exit as exc:
        assert exc.exit_code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: r.toml: [[line]] 2: share 1.5 is outside [0, 1] (fix: [x])"
