"""Two limits on the shape of harness/ that keep it readable: no module over 400 lines and
no function with more than 8 parameters (``self``/``cls`` not counted; ``*args`` and
``**kwargs`` count one each). A function that needs more takes a settings object.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "harness"
MAX_LINES = 400
MAX_PARAMETERS = 8

pytestmark = pytest.mark.fast


def _modules() -> list[Path]:
    return sorted(HARNESS.rglob("*.py"))


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (a.vararg is not None) + (a.kwarg is not None)


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(p.relative_to(HARNESS.parent)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"


def test_no_function_takes_more_than_eight_parameters() -> None:
    wide = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            fn = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if fn and (n := _parameters(node)) > MAX_PARAMETERS:
                wide.append(f"{path.relative_to(HARNESS.parent)}:{node.lineno} {node.name} ({n})")
    assert not wide, f"functions over {MAX_PARAMETERS} parameters (take a settings object): {wide}"


def test_the_checks_see_a_wide_function() -> None:
    """The counter itself: a 9-parameter function is seen, ``self`` is not counted."""
    tree = ast.parse("class A:\n def f(self, a, b, c, d, e, f, g, *h, **i): pass\n")
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert _parameters(fn) == 9
