"""The one shape of the harness's named tables: tracks, metrics, attack recipes, training
recipes, figures, architectures and conformance checks.

A ``Registry`` maps names to entries in the order they were registered (listings and
reports follow it), refuses a name registered twice, and answers a name it does not hold
with one line that says what was asked for and the closest name it does hold ("did you
mean ...?"), or every name when none is close. That error is a ``SpecError`` (the CLI
prints it as one line) and a ``KeyError`` (code that looks names up as in a dict keeps
working).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from harness.errors import SpecError

T = TypeVar("T")


def suggest(word: str, options: Iterable[str]) -> str:
    """The fix for an unknown name: the closest of ``options``, else all of them."""
    names = list(options)
    close = difflib.get_close_matches(word, names, n=1)
    return f"did you mean {close[0]!r}?" if close else f"choose from: {', '.join(names)}"


class UnknownName(SpecError, KeyError):
    """A name a registry does not hold (in a profile, a manifest, a rubric or an option)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return self.line()


class Registry(Mapping[str, T]):
    """Named entries of one kind (``what``, as errors name it), in registration order."""

    def __init__(self, what: str, entries: Iterable[tuple[str, T]] = ()) -> None:
        self.what = what
        self._entries: dict[str, T] = {}
        for name, entry in entries:
            self.register(name, entry)

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a name already taken is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def decorator(self, name_of: Callable[[T], str]) -> Callable[[T], T]:
        """A decorator that registers what it decorates under ``name_of(it)``."""

        def add(entry: T) -> T:
            return self.register(name_of(entry), entry)

        return add

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def unknown(self, name: object) -> UnknownName:
        """The one-line error for a name this registry does not hold."""
        return UnknownName(f"unknown {self.what} {name!r}", fix=suggest(str(name), self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"
