"""The package's layers run one way: each module imports only from its own layer or below.

Walks every module of harness/ with ``ast`` (imports inside functions included) and
compares each import of a harness module with the layer table below. A module that is in
no layer fails the test, so a new module is placed on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: Bottom to top, whole packages (each on one layer). At the top of harness/ sit only the
#: contract (api.py), the errors, the paths and the one registry shape every layer shares.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness", "harness.api", "harness.errors", "harness.paths", "harness.registry"),
    ("harness.executors", "harness.data", "harness.toolkit", "harness.sandbox"),
    ("harness.submission", "harness.results"),
    ("harness.attacks",),
    ("harness.zoo",),
    ("harness.scoring",),
    ("harness.tracks",),
    ("harness.execution",),
    ("harness.attack_track", "harness.reproduce"),
    ("harness.conformance",),
    ("harness.report",),
    ("harness.grading",),
    ("harness.cli",),
)  # fmt: skip
#: The modules allowed at the top of harness/ (the rest live in packages).
TOP = {"harness", "harness.api", "harness.errors", "harness.paths", "harness.registry"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(HARNESS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The layer of the most specific LAYERS entry that names ``module`` or a package of it."""
    best: tuple[int, int] | None = None
    for i, names in enumerate(LAYERS):
        for name in names:
            named = module == name or module.startswith(name + ".")
            if named and (best is None or len(name) > best[1]):
                best = (i, len(name))
    return None if best is None else best[0]


def _import_statements(path: Path, module: str) -> Iterator[tuple[str, list[str] | None]]:
    """Each import of ``module`` (inside functions too), absolute: ``(module, None)`` for
    ``import module``, ``(base, names)`` for ``from base import names``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [a.name for a in node.names]


def _harness_names(names: set[str]) -> set[str]:
    return {name for name in names if name == "harness" or name.startswith("harness.")}


def _imports(path: Path, module: str) -> set[str]:
    out = set()
    for base, names in _import_statements(path, module):
        out.add(base)
        out |= {f"{base}.{n}" for n in names or ()}  # `from pkg import module`
    return _harness_names(out)


def _edges(path: Path, module: str, modules: set[str]) -> set[str]:
    """The harness modules ``module`` imports: ``from pkg import mod`` names ``pkg.mod``
    alone (the package's own code is not what it needs)."""
    out: set[str] = set()
    for base, names in _import_statements(path, module):
        subs = {f"{base}.{n}" for n in names or ()}
        out |= subs if subs and subs <= modules else {base}
    return {t for n in _harness_names(out) if (t := _known(n, modules)) not in (None, module)}


def _known(name: str, modules: set[str]) -> str | None:
    """``name`` itself if it is a module, else the module that defines it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_sits_in_a_layer():
    modules = {_module_name(p) for p in HARNESS.rglob("*.py")}
    assert not [m for m in sorted(modules) if _layer(m) is None]


def test_every_layer_names_whole_packages_and_the_top_holds_only_the_contract():
    modules = {_module_name(p) for p in HARNESS.rglob("*.py")}
    packages = {_module_name(p) for p in HARNESS.rglob("__init__.py")}
    named = [name for layer in LAYERS for name in layer]
    assert len(named) == len(set(named))
    assert not [n for n in named if n not in TOP and n not in packages]
    assert not [m for m in modules if m.count(".") == 1 and m not in TOP and m not in packages]


def test_no_import_circles():
    """No module reaches itself through the harness modules it imports (inside functions
    too): a circle is a layering that only works by import order."""
    paths = {_module_name(p): p for p in HARNESS.rglob("*.py")}
    graph = {m: _edges(p, m, set(paths)) for m, p in paths.items()}
    circles, state = [], dict.fromkeys(graph, 0)

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state[t] == 1:
                circles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif state[t] == 0:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(graph):
        if state[m] == 0:
            visit(m, [m])
    assert not circles, "\n".join(circles)


def test_no_module_imports_from_a_layer_above_it():
    paths = {_module_name(p): p for p in HARNESS.rglob("*.py")}
    upward = []
    for module, path in sorted(paths.items()):
        own = _layer(module)
        for name in _imports(path, module):
            target = _known(name, set(paths))
            if target is None or target == module:
                continue
            theirs = _layer(target)
            if own is not None and theirs is not None and theirs > own:
                upward.append(f"{module} (layer {own}) imports {target} (layer {theirs})")
    assert not upward, "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    private = []
    for path in sorted(HARNESS.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                names = [a.name for a in node.names if a.name.startswith("_")]
                names = [n for n in names if not n.startswith("__")]
                private += [f"{path.relative_to(HARNESS)}: {node.module}.{n}" for n in names]
    assert not private, private
