"""One options object per command: ``takes_options`` lets a typer command take its
arguments and options as one frozen dataclass, and ``TaskOptions`` is what the commands
that run tasks share (their sandbox, store and executor options, and the one place where
a command's options become the run's ``RunConfig``)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_type_hints

from harness.cli.common import command_line, results_store

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from harness.execution.config import RunConfig
    from harness.executors import Executor

Opts = TypeVar("Opts")
R = TypeVar("R")


def takes_options(command: Callable[[Opts], R]) -> Callable[..., R]:
    """Let a typer command take its options as ONE object (stack it under ``@app.command``
    and ``@user_errors``): ``command``'s one parameter is typed with a dataclass whose
    fields are the command's arguments and options, in ``--help`` order, each typed as a
    parameter would be (``Annotated[T, typer.Option(...)]``, ``typer.Argument``) and with
    the option's default as its own (a value: no ``default_factory``); the dataclass is
    defined at module level, where the annotations are resolved.

    Typer sees one keyword parameter per field: ``typer.utils.get_params_from_function``
    reads ``inspect.signature`` (which stops at ``__signature__``) and ``get_type_hints``
    (``__annotations__``), both set here from the fields. ``command`` gets the dataclass
    built from what typer parsed."""
    hints = {k: v for k, v in get_type_hints(command).items() if k != "return"}
    cls: Any = next(iter(hints.values()), None)
    if len(hints) != 1 or not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise TypeError(f"{command.__name__} must take one parameter typed with a dataclass")
    types, params = get_type_hints(cls, include_extras=True), []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: an option's default is a value")
        default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=types[f.name]))  # fmt: skip

    @functools.wraps(command)
    def wrapper(**parsed: Any) -> R:
        return command(cast(Opts, cls(**parsed)))

    wrapper.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return wrapper


class TaskOptions:
    """What the options objects of the commands that run tasks (run, reproduce, attack run)
    share: their sandbox --backend, --db, and --workers or --scheduler, and the one place
    where a command's options become the run's ``RunConfig``."""

    backend: str
    db: Path | None
    workers: int | None
    scheduler: str | None

    def run_config(self) -> RunConfig:
        """The run's config: each option named as a ``RunConfig`` field (backend, run_id,
        fuzz_budget, seeds, configure_on, retry_timeouts), ``RunConfig``'s default for the
        fields a command has no option for, and the command line as typed."""
        from harness.execution.config import RunConfig

        given = vars(self)
        named = {f.name: given[f.name] for f in dataclasses.fields(RunConfig) if f.name in given}
        return RunConfig(**{**named, "command": command_line()})

    def executor(self) -> AbstractContextManager[Executor]:
        """The executor of --workers / --scheduler (``harness.executors.open_executor``)."""
        from harness.executors import open_executor

        return open_executor(self.workers, self.scheduler)

    def store(self) -> Any:
        """The results store of --db (the default one without)."""
        return results_store(self.db)
