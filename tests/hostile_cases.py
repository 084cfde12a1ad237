"""The hostile hand-ins of tests/hostile/ as submission folders.

Each case is one Python file: its module-level ``TRACKS``, ``RESOURCES`` and ``PARAMS``
(plain literals) become the folder's submission.toml, the file itself its submission.py,
and its class ``Entry`` the entry point.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

CASES_DIR = Path(__file__).resolve().parent / "hostile"


def case_names() -> list[str]:
    return sorted(p.stem for p in CASES_DIR.glob("*.py"))


def declared(name: str, cases: Path = CASES_DIR) -> dict[str, Any]:
    """The literal TRACKS / RESOURCES / PARAMS of a case file."""
    tree = ast.parse((cases / f"{name}.py").read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("TRACKS", "RESOURCES", "PARAMS"):
                found[target.id] = ast.literal_eval(node.value)
    return found


def _toml_table(title: str, values: dict[str, Any]) -> str:
    lines = [f"[{title}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def materialize(name: str, dest: Path, cases: Path = CASES_DIR, **params: Any) -> Path:
    """The case ``name`` of folder ``cases`` as a submission folder under ``dest``;
    ``params`` override the case's PARAMS."""
    spec = declared(name, cases)
    folder = dest / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cases / f"{name}.py", folder / "submission.py")
    toml = (
        f"name = {json.dumps('hostile-' + name.replace('_', '-'))}\n"
        f'description = "hostile test case: tests/{cases.name}/{name}.py"\n'
        'entry = "submission:Entry"\n'
        f"tracks = {json.dumps(spec['TRACKS'])}\n"
    )
    if spec.get("RESOURCES"):
        toml += _toml_table("resources", spec["RESOURCES"])
    merged = {**spec.get("PARAMS", {}), **params}
    if merged:
        toml += _toml_table("params", merged)
    (folder / "submission.toml").write_text(toml)
    return folder
