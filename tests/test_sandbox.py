"""Real sandboxed runs of hostile submissions: each attempt fails inside the sandbox and is
recorded as that submission's failure, leaving every other result intact."""

import socket
import threading

import pytest
from conftest import HOSTILE, REPO

from harness.api import Track
from harness.runner import run_submissions
from harness.store import ResultsStore
from harness.submission.manifest import load_submission

pytestmark = pytest.mark.sandbox


def _copy_with_params(tmp_path, name, params_toml):
    import shutil

    dest = tmp_path / name
    shutil.copytree(HOSTILE / name, dest)
    toml = (dest / "submission.toml").read_text().split("[params]")[0]
    (dest / "submission.toml").write_text(toml + "[params]\n" + params_toml)
    return dest


def _run(tmp_path, folder, backend, tracks=(Track.DETECT,), model_ids=None):
    store = ResultsStore(tmp_path / "results.sqlite")
    run_submissions(
        [load_submission(folder)], "tiny", list(tracks), store, backend=backend, model_ids=model_ids
    )
    return {r.model_id: r for r in store.tasks("tiny")}


def test_submission_cannot_open_a_socket(tmp_path, tiny_zoo, backend):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    folder = _copy_with_params(tmp_path, "net_probe", f"port = {server.getsockname()[1]}\n")
    tasks = _run(tmp_path, folder, backend)
    waiter.join()
    server.close()
    assert len(tasks) == len(tiny_zoo)
    for rec in tasks.values():
        assert rec.status == "ok" and rec.isolation == "bwrap"
        assert rec.outputs["score"] == 0.0, rec.outputs["extra"]
    assert not accepted


def test_submission_cannot_read_truth_or_tamper(tmp_path, tiny_zoo, backend, harness_home):
    secrets = [str(m.private_dir / "truth.json") for m in tiny_zoo]
    secrets += [str(harness_home / "results.sqlite"), str(REPO / "models_zoo" / "tiny.toml")]
    quoted = ", ".join(f'"{p}"' for p in secrets)
    folder = _copy_with_params(tmp_path, "truth_thief", f"paths = [{quoted}]\n")
    tasks = _run(tmp_path, folder, backend)
    for rec in tasks.values():
        assert rec.status == "ok"
        assert rec.outputs["score"] == 0.0, rec.outputs["extra"]["stolen"]


def test_a_crash_fails_only_its_own_models(tmp_path, tiny_zoo, backend):
    tasks = _run(tmp_path, HOSTILE / "crash_on_b", backend)
    arch = {m.id: m.truth().arch for m in tiny_zoo}
    assert len(tasks) == len(tiny_zoo)
    for model_id, rec in tasks.items():
        if arch[model_id] == "mnist_cnn_b":
            assert rec.status == "failed" and "exited with code 3" in rec.error
        else:
            assert rec.status == "ok" and rec.outputs["score"] == 0.25


def test_hang_and_memory_limits_kill_only_the_task(tmp_path, tiny_zoo, backend):
    # One model of each architecture: it hangs on arch b, hogs memory on arch a.
    two = ["mnist-clean-b-s2-v1", "mnist-clean-a-s1-v1"]
    tasks = _run(tmp_path, HOSTILE / "hang_and_hog", backend, model_ids=two)
    assert sorted(tasks) == sorted(two)
    arch = {m.id: m.truth().arch for m in tiny_zoo}
    for model_id, rec in tasks.items():
        assert rec.status == "failed"
        if arch[model_id] == "mnist_cnn_b":
            assert "wall-clock limit of 10 s exceeded (it ran" in rec.error, rec.error
        else:
            assert "memory limit of 1.5 GiB" in rec.error or "MemoryError" in rec.error, rec.error


def test_process_backend_runs_and_says_it_is_unisolated(tmp_path, tiny_zoo):
    tasks = _run(tmp_path, REPO / "submissions" / "null", "process")
    assert {r.isolation for r in tasks.values()} == {"none"}
    assert all(r.status == "ok" for r in tasks.values())
