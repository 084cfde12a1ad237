"""Every command's --help, and user errors printed verbatim (brackets are text, not markup)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app
from harness.cli.common import user_errors
from harness.cli.options import takes_options
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


# -- one options object per command (harness.cli.common.takes_options) ----------------------
@dataclass(frozen=True)
class _Greet:
    names: Annotated[list[str], typer.Argument(help="Who.")]
    times: Annotated[int, typer.Option("--times", "-n", min=1, help="How often.")] = 1
    loud: Annotated[bool, typer.Option(help="Shout.")] = False
    style: Annotated[str | None, typer.Option(help="A style.")] = None


def test_a_command_takes_its_options_as_one_object():
    got: list[_Greet] = []
    demo = typer.Typer()

    @demo.command()
    @user_errors
    @takes_options
    def greet(o: _Greet) -> None:
        """Greet people."""
        got.append(o)
        if "boom" in o.names:
            raise HarnessError("no [boom] here", fix="greet someone else")

    runner = CliRunner()
    assert runner.invoke(demo, ["ann", "bob", "-n", "3", "--loud"]).exit_code == 0
    assert runner.invoke(demo, ["cy"]).exit_code == 0
    assert got == [_Greet(["ann", "bob"], 3, True, None), _Greet(["cy"])]
    usage = runner.invoke(demo, ["--help"]).output
    assert "Greet people." in usage
    assert usage.index("--times") < usage.index("--loud") < usage.index("--style")
    assert runner.invoke(demo, ["ann", "-n", "0"]).exit_code == 2  # min=1 still checked
    result = runner.invoke(demo, ["boom"])
    assert result.exit_code == 2 and len(got) == 3
    assert result.output.strip() == "error: no [boom] here (fix: greet someone else)"


@dataclass(frozen=True)
class _Listed:
    names: list[str] = field(default_factory=list)


def test_takes_options_refuses_what_typer_could_not_parse():
    def two(a: int, b: int) -> None: ...
    def listed(o: _Listed) -> None: ...

    for fn in (two, listed):
        with pytest.raises(TypeError):
            takes_options(fn)


def test_the_run_commands_options_become_one_run_config(monkeypatch):
    from harness.cli.attack_track import AttackRunOptions
    from harness.cli.runs import ReproduceOptions, RunCommandOptions
    from harness.execution.config import RunConfig

    monkeypatch.setattr(sys, "argv", ["harness", "run", "x"])
    run = RunCommandOptions([Path("x")], backend="process", run_id="r", fuzz_budget=7, seeds=3,
                     configure_on="full", retry_timeouts=True)  # fmt: skip
    assert run.run_config() == RunConfig(backend="process", run_id="r", command="harness run x",
                                         fuzz_budget=7, seeds=3, configure_on="full",
                                         retry_timeouts=True)  # fmt: skip
    assert ReproduceOptions(run_id="p", fuzz_budget=9).run_config() == RunConfig(
        run_id="p", command="harness run x", fuzz_budget=9
    )
    attack = AttackRunOptions([Path("a")], "d", configure_on="full").run_config()
    assert attack == RunConfig(run_id="attack-track", command="harness run x", configure_on="full")


def test_zoo_import_options_are_the_import_request():
    from harness.cli.zoo import ZooImportOptions
    from harness.zoo.importer import ImportRequest

    args = {"model_file": Path("m.h5"), "model_id": "m", "clean_val": Path("v.h5"),
            "test": Path("t.h5"), "target": 3, "truth": "backdoored"}  # fmt: skip
    assert ZooImportOptions(**args).request() == ImportRequest(**args)
