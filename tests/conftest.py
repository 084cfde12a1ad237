"""Shared fixtures (a private HARNESS_HOME per test session, the tiny and toy zoos) and the
two test tiers.

Integration tests: those that use a fixture of INTEGRATION_FIXTURES (directly or through
another fixture), those marked ``integration``, ``sandbox`` or ``slow``, and every test of a
module that imports one of INTEGRATION_IMPORTS at module level. Every other test is a unit
test and is marked ``fast`` here, at collection. ``pytest -m fast`` (``make test-fast``)
runs the unit tests alone, under a guard that fails any of them that imports
TensorFlow/Keras, builds a zoo or starts a sandbox worker (the integration modules are not
even collected then). ``pytest`` (``make test``) runs both tiers.
"""

from __future__ import annotations

import ast
import importlib.abc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "submissions"

# Hypothesis profiles for the property-based tests (marker `fuzz`): `ci`, what `make test`
# runs: few examples, derandomized (the same ones every run, so a failure reproduces), no
# deadline (a loaded machine must not fail them), no example database; `fuzz`, what `make
# test-slow` selects with HYPOTHESIS_PROFILE=fuzz: thousands of random examples each.
_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None,
                          database=None, suppress_health_check=_SLOW_DATA)  # fmt: skip
settings.register_profile("fuzz", max_examples=2000, deadline=None,
                          suppress_health_check=_SLOW_DATA)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Fixtures that build a zoo or need the sandbox; using one makes a test an integration test.
INTEGRATION_FIXTURES = frozenset({"tiny_zoo", "toy_zoo", "attack_zoo", "face_zoo", "backend"})
#: Top-level packages a fast test must not import (seconds to import; they train models).
HEAVY_MODULES = frozenset({"tensorflow", "keras", "tf_keras"})
#: A test module importing one of these at module level holds integration tests only: the
#: reference-submission helpers load submission code that imports Keras, the builder
#: trains, the runner starts sandbox workers.
INTEGRATION_IMPORTS = HEAVY_MODULES | {"refsubs", "harness.zoo.builder", "harness.execution.runner"}


class HeavyImport(RuntimeError):
    """A fast test imported TensorFlow/Keras (not an ImportError: nothing may swallow it as
    an optional dependency that is missing)."""


class _Guard(importlib.abc.MetaPathFinder):
    """During a fast run: refuses the heavy imports and records every breach of the tier."""

    def __init__(self) -> None:
        self.breaches: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in HEAVY_MODULES:
            self.breach(f"imports {name}")
        return None

    def breach(self, what: str) -> None:
        self.breaches.append(what)
        raise HeavyImport(
            f"a fast (unit) test {what}: give it fabricated inputs, or mark it "
            "@pytest.mark.integration (or use a zoo fixture) so that only `make test` runs it"
        )


_GUARD: _Guard | None = None
_SKIPPED = pytest.StashKey[set[str]]()


def _fast_run(config: pytest.Config) -> bool:
    return str(config.getoption("markexpr", "") or "").strip() == "fast"


def _forbid(owner: object, attr: str, what: str) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        assert _GUARD is not None
        _GUARD.breach(what)

    setattr(owner, attr, refuse)


def pytest_configure(config: pytest.Config) -> None:
    global _GUARD
    if not _fast_run(config):
        return
    from harness.sandbox import client
    from harness.zoo import builder

    loaded = sorted(m for m in HEAVY_MODULES if m in sys.modules)
    if loaded:
        raise pytest.UsageError(
            f"{', '.join(loaded)} imported before the fast tier started (a plugin, or "
            "harness.zoo.builder / harness.sandbox.client importing it at module level)"
        )
    _GUARD = _Guard()
    sys.meta_path.insert(0, _GUARD)
    # The builder's and the sandbox's entry points are refused to fast tests outright.
    _forbid(builder, "build_profile", "builds a zoo (build_profile)")
    _forbid(builder, "build_entry", "builds a zoo model (build_entry)")
    _forbid(client.SandboxWorker, "start", "starts a sandbox worker")


def _integration_import(path: Path) -> str | None:
    """The first module of INTEGRATION_IMPORTS a test file imports at module level."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError):
        return None  # let pytest report it
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            if name in INTEGRATION_IMPORTS or name.partition(".")[0] in HEAVY_MODULES:
                return name
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    name = collection_path.name
    if _fast_run(config) and name.startswith("test_") and name.endswith(".py"):
        module = _integration_import(collection_path)
        if module:
            config.stash.setdefault(_SKIPPED, set()).add(f"{name} ({module})")
            return True
    return None


#: The integration modules that take longest (worker-seconds, measured with --durations=0
#: on 2 cores), longest first. pytest-xdist's loadscope hands out modules in collection
#: order; starting the long ones first keeps a long module from running alone at the end.
LONGEST_MODULES = (
    "test_faults.py",
    "test_hostile.py",
    "test_dask.py",
    "test_grade_batch.py",
    "test_grade_hostile.py",
    "test_attack_track.py",
    "test_cli.py",
    "test_provenance.py",
    "test_readback.py",
    "test_goodnet.py",
    "test_ref_neural_cleanse.py",
    "test_import.py",
    "test_report_browser.py",
    "test_ref_deepinspect_goodnet.py",
    "test_runner.py",
    "test_ref_backfuzz.py",
    "test_zoo_build.py",
    "test_bundle_leaks.py",
    "test_sandbox.py",
)


def _module_rank(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_MODULES.index(name) if name in LONGEST_MODULES else len(LONGEST_MODULES)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_module_rank)  # stable: each module's tests keep their order
    modules: dict[Path, str | None] = {}
    for item in items:
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            continue
        if any(item.get_closest_marker(n) for n in ("integration", "sandbox", "slow")):
            continue
        path = item.path
        if path not in modules:
            modules[path] = _integration_import(path)
        if modules[path] is None:
            item.add_marker(pytest.mark.fast)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail a fast test that breached its tier even if it caught the HeavyImport."""
    before = len(_GUARD.breaches) if _GUARD else 0
    result = yield
    if _GUARD and len(_GUARD.breaches) > before:
        pytest.fail(f"fast test breached its tier: {'; '.join(_GUARD.breaches[before:])}")
    return result


def pytest_report_header(config: pytest.Config) -> str | None:
    if _fast_run(config):
        return "fast tier: no TensorFlow/Keras import, no zoo build, no sandbox worker"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = sorted(config.stash.get(_SKIPPED, set()))
    if skipped:
        terminalreporter.write_line(
            "fast tier: integration modules not collected: " + ", ".join(skipped)
        )


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """`harness ARGS...` as a user runs it (a fresh process, no progress bars)."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_PROGRESS": "0"},
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session", autouse=True)
def harness_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session builds into its own cache; nothing leaks between runs. The
    workers of one parallel session (pytest-xdist, `make test`) share it: their zoo
    fixtures build each profile together, every model once (ZooStore.object_lock)."""
    home = os.environ.get("HARNESS_TEST_HOME")
    if home:
        path = Path(home)
    elif os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "harness-home"  # the session's
    else:
        path = tmp_path_factory.mktemp("harness-home")
    path.mkdir(parents=True, exist_ok=True)
    os.environ["HARNESS_HOME"] = str(path)
    # `harness` commands the tests start run in their own process (pytest-xdist spreads
    # the tests over the cores already); the Dask tests ask for their workers by option.
    os.environ["HARNESS_WORKERS"] = "1"
    return path


#: The test zoos, by the fixture that builds each.
ZOO_FIXTURES = {
    "tiny_zoo": "tiny",
    "toy_zoo": "toy",
    "attack_zoo": "tiny-attacks",
    "face_zoo": "tiny-faces",
}


def _training_cost(entry) -> int:  # noqa: ANN001
    """A rough cost of building one entry, to start the longest first: images seen, twice
    for the recipes that train two models (a clean one first, then the attack)."""
    twice = entry.attack in {"reconstructed_trigger", "pruning_aware", "trojannet"}
    return entry.epochs * (entry.train_size or 3000) * (2 if twice else 1)


@pytest.fixture(scope="session", autouse=True)
def _tensorflow_threads_per_worker(request: pytest.FixtureRequest) -> None:
    """Share the cores among the pytest-xdist workers instead of letting every worker's
    TensorFlow (and the `harness` processes the tests start) take them all: two default
    TensorFlows training at once on 2 cores finish their models later than one alone
    (measured: two tiny-attacks models each, 43 s together against 21.5 s in turn), with
    one thread each they finish in 26 s. Sandbox workers already run on one thread
    (SandboxLimits.threads)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or _fast_run(request.config):
        return
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    # Read by TensorFlow when its runtime starts: in the `harness` subprocesses, and here.
    os.environ["TF_NUM_INTRAOP_THREADS"] = threads
    os.environ["TF_NUM_INTEROP_THREADS"] = threads
    from harness.executors.tf_runtime import import_tensorflow

    import_tensorflow(int(threads))


@pytest.fixture(scope="session", autouse=True)
def _test_zoos_built_together(
    request: pytest.FixtureRequest, harness_home: Path, _tensorflow_threads_per_worker: None
) -> None:
    """With several pytest-xdist workers, every worker first builds every test zoo the
    session will use, longest entries first, all of them sharing the work through the
    zoo's object locks: each model is trained once, both cores train, and no worker
    waits on a zoo that one other worker builds alone (the tiny-attacks zoo alone takes
    four minutes). A single process (or `make test-fast`) builds each zoo when first used."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or _fast_run(request.config):
        return
    used = set().union(*(getattr(i, "fixturenames", ()) for i in request.session.items))
    profiles = [name for fixture, name in ZOO_FIXTURES.items() if fixture in used]
    if not profiles:
        return
    import zoo_cache

    from harness.zoo.builder import build_entries
    from harness.zoo.spec import load_profile
    from harness.zoo.store import ZooStore

    entries = [e for name in profiles for e in load_profile(name).entries]
    store = ZooStore()
    zoo_cache.fetch(entries, store)
    build_entries(sorted(entries, key=_training_cost, reverse=True), store)
    zoo_cache.keep(entries, store)


def _test_zoo(name: str):  # noqa: ANN202 - list[ZooModel], imported lazily
    """One test profile, built (or copied from the test zoo cache, tests/zoo_cache.py)."""
    import zoo_cache

    from harness.zoo.builder import build_profile
    from harness.zoo.spec import load_profile
    from harness.zoo.store import ZooStore

    profile, store = load_profile(name), ZooStore()
    zoo_cache.fetch(profile.entries, store)
    models = build_profile(profile, store)
    zoo_cache.keep(profile.entries, store)
    return models


@pytest.fixture(scope="session")
def tiny_zoo(harness_home: Path):
    return _test_zoo("tiny")


@pytest.fixture(scope="session")
def toy_zoo(harness_home: Path):
    return _test_zoo("toy")


@pytest.fixture(scope="session")
def backend() -> str:
    from harness.sandbox.backends import bwrap_available

    if not bwrap_available():
        pytest.fail(
            "bubblewrap is not usable on this machine: install it (apt-get install "
            "bubblewrap); the sandbox tests must not silently skip"
        )
    return "bwrap"


@pytest.fixture(scope="session")
def attack_zoo(harness_home: Path):
    """One small model of every recipe beyond BadNets, and four clean counterparts."""
    return _test_zoo("tiny-attacks")


@pytest.fixture(scope="session")
def face_zoo(harness_home: Path):
    """A clean face model and two face BadNets on 10 SynthFaces identities."""
    return _test_zoo("tiny-faces")
