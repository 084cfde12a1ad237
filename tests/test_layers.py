"""The package's layers run one way: each module imports only from its own layer or below.

Walks every module of harness/ with ``ast`` (imports inside functions included) and
compares each import of a harness module with the layer table below. A module that is in
no layer fails the test, so a new module is placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"

#: Bottom to top. A name is a module or a package (all of its modules).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness", "harness.api", "harness.errors", "harness.paths", "harness.cluster"),
    ("harness.data", "harness.reverse", "harness.pruning", "harness.sandbox.protocol",
     "harness.sandbox.limits", "harness.sandbox.cgroup", "harness.sandbox.output",
     "harness.sandbox.rootless", "harness.sandbox.watch",
     "harness.sandbox", "harness.scoring.metrics",
     "harness.submission", "harness.store", "harness.store_recover"),
    ("harness.attacks", "harness.label_scan"),
    ("harness.zoo",),
    ("harness.scoring",),
    ("harness.sandbox.backends", "harness.sandbox.client", "harness.sandbox.oneshot"),
    ("harness.tracks",),
    ("harness.task", "harness.configure", "harness.jobs", "harness.runner",
     "harness.sandbox.worker", "harness.store_diff"),
    ("harness.goodnet", "harness.conformance", "harness.reproduce", "harness.attack_track"),
    ("harness.report",),
    ("harness.grading",),
    ("harness.cli",),
)  # fmt: skip


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


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return {name for name in out if name == "harness" or name.startswith("harness.")}


def _known(name: str, modules: set[str]) -> str | None:
    """``name`` itself if it is a module, else the module that defines it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_sits_in_a_layer():
    modules = {_module_name(p) for p in HARNESS.rglob("*.py")}
    assert not [m for m in sorted(modules) if _layer(m) is None]


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
