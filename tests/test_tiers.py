"""The fast tier is enforced, not a convention: tests/conftest.py marks the unit tests and
fails any that imports TensorFlow/Keras or builds a zoo (checked in a throwaway test tree
under a separate pytest, so nothing heavy is imported here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import REPO

UNIT = """
def test_pure():
    assert 1 + 1 == 2

def test_sneaks_in_keras():
    import keras  # noqa: F401

def test_swallows_the_refusal():
    try:
        import tensorflow  # noqa: F401
    except Exception:
        pass

def test_builds_a_zoo():
    from harness.zoo.builder import build_profile
    build_profile(None)

def test_uses_the_tiny_zoo(tiny_zoo):
    raise AssertionError("an integration test ran in the fast tier")
"""

MARKED = """
import pytest

@pytest.mark.integration
def test_marked_by_hand():
    import keras  # noqa: F401
"""

HEAVY_MODULE = """
import keras

def test_never_collected():
    raise AssertionError("collected")
"""


def test_the_fast_run_fails_heavy_unit_tests_and_skips_integration_ones(tmp_path):
    tree = tmp_path / "tests"
    tree.mkdir()
    shutil.copy(REPO / "tests" / "conftest.py", tree / "conftest.py")
    (tree / "test_unit.py").write_text(UNIT)
    (tree / "test_marked.py").write_text(MARKED)
    (tree / "test_heavy_module.py").write_text(HEAVY_MODULE)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-m", "fast", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnknownMarkWarning", str(tree)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 failed, 1 passed, 2 deselected" in out, out
    assert "test_sneaks_in_keras - conftest.HeavyImport" in out
    assert (
        "test_swallows_the_refusal - Failed: fast test breached its tier: imports tensorflow" in out
    )
    assert "test_builds_a_zoo - conftest.HeavyImport: a fast (unit) test builds a zoo" in out
    assert "test_heavy_module.py (keras)" in out
