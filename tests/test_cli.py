"""The CLI as a user runs it: one clear line per user error, JSON shapes, rendered files."""

import json
from pathlib import Path

import pytest
from conftest import HOSTILE, REPO, run_cli

from harness.results import ResultsStore
from harness.results.schema import RESULTS_JSON_VERSION

harness = run_cli


@pytest.mark.parametrize(
    "args, expected",
    [
        (("zoo", "build", "--profile", "tinny"), "did you mean 'tiny'"),
        (("run", "/nonexistent/sub", "--profile", "tiny"), "no such submission folder"),
        (
            ("run", str(REPO / "submissions" / "null"), "--profile", "tiny", "--tracks", "detct"),
            "unknown track",
        ),
        (("zoo", "list", "--profile", "nothere"), "harness zoo build --profile nothere"),
        (
            ("run", str(REPO / "submissions" / "null"), "--profile", "tiny", "--backend", "docker"),
            "unknown sandbox backend",
        ),
        (("submission", "check", str(REPO / "harness")), "missing submission.toml"),
        (
            ("submission", "check", str(REPO / "submissions" / "null"), "--check", "check_x"),
            "unknown conformance check 'check_x'",
        ),
        (("zoo", "release", "--profile", "tiny", "--out", "/tmp/x"), "has no training split"),
        (
            ("zoo", "release", "--profile", "tiny", "--split", "eval", "--out", "/tmp/x"),
            "cannot be released",
        ),
        (
            ("run", str(REPO / "submissions" / "attacks" / "blended"), "--profile", "tiny"),
            "is an attack hand-in",
        ),
        (
            (
                "attack",
                "run",
                str(REPO / "submissions" / "null"),
                "--defenses",
                str(REPO / "submissions" / "strip"),
                "--recipe",
                "tiny",
            ),
            "declare no attack track",
        ),  # fmt: skip
        (
            (
                "attack",
                "run",
                str(REPO / "submissions" / "attacks" / "blended"),
                "--defenses",
                str(REPO / "submissions" / "null"),
                "--recipe",
                "huge",
            ),
            "unknown training recipe 'huge'",
        ),  # fmt: skip
        (("attack", "table", "--run-id", "no-such-run"), "holds no attack hand-in"),
        (("attack", "table", "--format", "pdf"), "unknown format 'pdf'"),
        (("zoo", "from-attacks", "--profile", "default"), "is a shipped zoo profile"),
    ],
)
def test_user_errors_are_one_line(args, expected, tiny_zoo):
    proc = harness(*args)
    assert proc.returncode == 2, proc
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_unwritable_paths_are_one_line(tmp_path, tiny_zoo):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for args in (
        ("results", "--db", str(blocker / "r.sqlite")),
        ("leaderboard", "--db", str(blocker / "r.sqlite")),
    ):
        proc = harness(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "fix:" in proc.stderr


def test_zoo_list_and_show_hide_the_truth(tiny_zoo):
    rows = json.loads(harness("zoo", "list", "--profile", "tiny", "--json", check=True).stdout)
    assert {r["id"] for r in rows} == {m.id for m in tiny_zoo}
    model = "mnist-badnets-patch3-t0-v1"
    public = json.loads(harness("zoo", "show", model, "--profile", "tiny", check=True).stdout)
    assert "truth" not in public and public["card"]["num_classes"] == 10
    full = json.loads(
        harness("zoo", "show", model, "--profile", "tiny", "--truth", check=True).stdout
    )
    assert full["truth"]["targets"] == [0] and full["truth"]["attack"] == "badnets_patch"


@pytest.mark.sandbox
def test_run_results_and_leaderboard(tmp_path, toy_zoo, backend):
    """The output formats of `run`, `results` and `leaderboard`, for both tracks null takes,
    on the two-model toy zoo (one clean, one backdoored: every metric has its models; the
    tiny zoo's five add seconds, not checks)."""
    db = str(tmp_path / "r.sqlite")
    harness(
        "run",
        str(REPO / "submissions" / "null"),
        "--profile",
        "toy",
        "--db",
        db,
        "--backend",
        backend,
        check=True,
    )
    rows = json.loads(harness("results", "--json", "--db", db, check=True).stdout)
    stamp = {"schema_version", "run_id", "zoo_hash"}
    fields = {"submission", "track", "metric", "value", "ci_low", "ci_high"}
    assert all(set(r) == stamp | fields for r in rows)
    store = ResultsStore(Path(db))
    (run,) = store.runs()
    assert {(r["schema_version"], r["run_id"], r["zoo_hash"]) for r in rows} == {
        (RESULTS_JSON_VERSION, run["run_id"], run["zoo_hash"])
    }
    metrics = {(r["track"], r["metric"]) for r in rows}
    assert {
        ("detect", "auc"),
        ("detect", "ce"),
        ("detect", "tpr_at_5fpr"),
        ("repair", "der"),
        ("repair", "csr_poisoned"),
        ("repair", "ca_clean_models"),
    } <= metrics
    auc = next(r for r in rows if r["metric"] == "auc")
    assert auc["ci_low"] is not None and auc["ci_high"] is not None
    per = json.loads(harness("results", "--json", "--per-model", "--db", db, check=True).stdout)
    assert {r["model"] for r in per if "model" in r} == {m.id for m in toy_zoo}
    out = tmp_path / "lb"
    harness("leaderboard", "--db", db, "--out", str(out), check=True)
    text = (out / "LEADERBOARD.md").read_text()
    assert "## Detection" in text and "## Repair" in text and "| null" in text
    assert "0.693" in text
    assert (out / "leaderboard.csv").read_text().startswith("submission,track,metric,value")


#: The broken hand-ins of tests/submissions/ the conformance suite must catch, and the
#: words of the checks each one fails.
BROKEN = {
    "bad_entry": ["entry resolves"],
    "nan_score": ["detect: outputs valid"],
    "off_by_one": ["(N+1)"],
    "weight_changer": [
        "detect: input model's weights unchanged",
        "detect: same seed, same result",
    ],
}


@pytest.mark.sandbox
def test_submission_check_passes_reference_and_catches_broken(toy_zoo, backend):
    """`make test`: the whole suite passes the null submission (in this process: the command
    adds only its lines), `harness submission check` fails bad_params through the CLI, and
    weight_changer fails the weights check (the one failure only the sandbox worker can see:
    it hashes the model's weights before and after the task); three sandbox starts and one
    command. The rest of BROKEN, and weight_changer's whole suite (its same-seed failure
    too), is test_the_submission_check_catches_each_broken_hand_in below, in `make
    test-slow`: each is one or two sandbox starts, and what they check is covered here or
    without a sandbox (outputs: tests/test_validate.py; a failed same-seed check:
    tests/test_readback.py; every check on every reference submission:
    tests/test_conformance.py, slow)."""
    from harness.conformance import NAMES, check_submission

    results = check_submission(REPO / "submissions" / "null", toy_zoo, backend=backend)
    assert [r.check for r in results if not r.passed] == []
    assert {r.check for r in results} == set(NAMES) - {"check_poisons"}  # attack hand-ins only
    proc = harness("submission", "check", str(HOSTILE / "bad_params"))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FAIL params match the constructor" in proc.stdout and "fix:" in proc.stdout
    (changed,) = check_submission(
        HOSTILE / "weight_changer", toy_zoo[:1], backend=backend, only=["check_weights_unchanged"]
    )
    assert not changed.passed and changed.fix, changed
    assert changed.name == BROKEN["weight_changer"][0], changed.name


@pytest.mark.slow
@pytest.mark.sandbox
@pytest.mark.parametrize("folder", BROKEN)
def test_the_submission_check_catches_each_broken_hand_in(folder, toy_zoo, backend):
    """`make test-slow`: each broken hand-in through the whole suite in this process (each
    run of the command imports TensorFlow anew), on one model: each of these faults shows
    on any model."""
    from harness.conformance import check_submission

    results = check_submission(HOSTILE / folder, toy_zoo[:1], backend=backend)
    failed = [r for r in results if not r.passed]
    said = [f"{r.name}: {r.message}" for r in failed]
    assert failed and all(r.fix for r in failed), (folder, said)
    for text in BROKEN[folder]:
        assert any(text in line for line in said), (folder, text, said)


def test_zoo_report_lists_truth_and_measurements(tiny_zoo):
    rows = json.loads(harness("zoo", "report", "--profile", "tiny", "--json", check=True).stdout)
    assert [r["id"] for r in rows] == [m.id for m in tiny_zoo]
    for row, model in zip(rows, tiny_zoo, strict=True):
        truth = model.truth()
        assert {"id", "dataset", "attack", "poisoned", "targets", "ca", "asr", "asr_floor"} <= set(
            row
        )
        assert (row["poisoned"], row["ca"], row["asr"], row["targets"]) == (
            truth.poisoned,
            truth.ca,
            truth.asr,
            truth.targets,
        )
    table = harness("zoo", "report", "--profile", "tiny", "--markdown", check=True).stdout
    cells = {
        tuple(c.strip() for c in line.strip("|").split("|"))[:3]
        for line in table.splitlines()
        if line.startswith("|")
    }
    assert ("mnist-badnets-patch3-t0-v1", "badnets_patch", "0") in cells
    assert "clean CA mean" in table


def test_zoo_audit_reports_aucs(tiny_zoo, toy_zoo):
    # One repeat of the cross validation: what is checked is the report's lines and the
    # profile found by its path, not the AUCs (tests/test_audit.py checks those).
    proc = harness("zoo", "audit", "--profile", "tiny", "--repeats", "1")
    assert proc.returncode in (0, 1), proc.stderr
    assert "logistic_regression" in proc.stdout and "ROC-AUC" in proc.stdout
    assert "metadata alone" in proc.stdout and "weight signature alone" in proc.stdout
    # A profile named by its TOML path finds the zoo its build recorded under its name.
    from harness.paths import zoo_specs_dir

    by_path = harness(
        "zoo", "audit", "--profile", str(zoo_specs_dir() / "tiny.toml"), "--repeats", "1"
    )
    assert (
        by_path.returncode in (0, 1)
        and by_path.stdout.splitlines()[1:] == proc.stdout.splitlines()[1:]
    )
    bad = harness("zoo", "audit", "--profile", "toy")
    assert bad.returncode == 2 and "at least two clean" in bad.stderr


def test_zoo_pictures_renders_a_png_per_attack(tmp_path, tiny_zoo):
    proc = harness("zoo", "pictures", "--profile", "tiny", "--out", str(tmp_path), check=True)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["trigger-badnets_patch.png", "trigger-badnets_pixel_a2a.png"], proc.stdout
    assert all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
