"""The sandboxed worker: imports the submission, serves one task per request.

Started by harness.sandbox.client inside bwrap (or a plain process). TensorFlow is imported
once; each task loads the model from the read-only inbox, builds a fresh instance of the
entry class, makes the track's call (harness.tracks), writes arrays to scratch and answers
with JSON.
Submission output on stdout is redirected to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from harness.executors.tf_runtime import import_tensorflow
from harness.sandbox import protocol
from harness.sandbox.output import begin_mark, end_mark


def _take_protocol_streams() -> tuple[Any, Any]:
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_in, proto_out


class Session:
    """One submission's worker. Its tasks on one model (the tracks of one job, in order)
    share one instance of the entry class, so a defense can reuse what ``detect`` computed
    when it ``repair``s the same model (Neural Cleanse reverse-engineers once per model);
    the next model gets a fresh instance."""

    def __init__(self) -> None:
        self.entry_cls: Any = None
        self.params: dict[str, Any] = {}
        self.calls: dict[str, Any] = {}
        self.instance: Any = None
        self.instance_model: str = ""

    def init(self, req: dict[str, Any]) -> dict[str, Any]:
        import_tensorflow(int(os.environ.get("HARNESS_THREADS", "1")))
        import keras
        import tensorflow as tf

        from harness.tracks import worker_calls

        self.calls = worker_calls()

        sys.path.insert(0, req["submission_dir"])
        module_name, _, attr = req["entry"].partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the submission's
            return _fail("entry", f"importing {module_name!r} failed: {exc!r}")
        self.entry_cls = getattr(module, attr, None)
        if self.entry_cls is None:
            return _fail("entry", f"module {module_name!r} has no attribute {attr!r}")
        self.params = dict(req.get("params") or {})
        try:
            inspect.signature(self.entry_cls).bind(**self.params)
        except TypeError as exc:
            return _fail("params", f"params do not match the constructor: {exc}")
        try:
            instance = self.entry_cls(**self.params)
        except Exception as exc:  # noqa: BLE001 - a constructor that refuses its params
            return _fail("params", f"the constructor refused the params: {exc!r}"[:1000])
        constructor = constructor_report(self.entry_cls, instance, self.params)
        from harness.tracks import all_methods

        methods = [m for m in all_methods() if callable(getattr(self.entry_cls, m, None))]
        return {
            "ok": True,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "methods": methods,
            "constructor": constructor,
        }

    def configure(self, req: dict[str, Any]) -> dict[str, Any]:
        """A learned detector's configure step: ``configure(training_dir, out_dir)`` on a
        fresh instance, once, over the labelled training split (read-only)."""
        out = Path(req["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        configure = getattr(self.entry_cls(**self.params), "configure", None)
        if not callable(configure):
            return _fail("entry", "the entry class has no configure(training_dir, out_dir)")
        import keras

        keras.utils.set_random_seed(int(req.get("seed", 0)))
        start = time.perf_counter()
        configure(Path(req["training_dir"]), out)
        return {"ok": True, "seconds": time.perf_counter() - start}

    def poison(self, req: dict[str, Any]) -> dict[str, Any]:
        """An attack hand-in's one call: ``poison(x, y, rng)`` on the training set in the
        read-only input folder, on a fresh instance, its arrays saved to ``out_dir``."""
        from harness.tracks.attack import poison_call

        out = Path(req["out_dir"])
        out.mkdir(parents=True, exist_ok=True)
        import keras

        keras.utils.set_random_seed(int(req["seed"]))
        start = time.perf_counter()
        result = poison_call(self.entry_cls(**self.params), req, out)
        return {"ok": True, "result": result, "seconds": time.perf_counter() - start}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        import keras

        bundle, out = Path(req["bundle"]), Path(req["out_dir"])
        model_key = str(req.get("model_key") or "")
        fresh_model = self.instance is None or not model_key or model_key != self.instance_model
        if fresh_model:
            for folder in req.get("wipe") or []:
                wipe(Path(folder))  # the files the last model's tasks left behind
        out.mkdir(parents=True, exist_ok=True)
        model = keras.saving.load_model(bundle / "model.keras", compile=False, safe_mode=True)
        clean = clean_data(bundle)
        keras.utils.set_random_seed(int(req["seed"]))
        before = _weights_digest(model)
        call, keeps_weights = self.calls[req["track"]]
        if fresh_model:
            self.instance = self.entry_cls(**self.params)
            self.instance_model = model_key
        instance = self.instance
        start = time.perf_counter()
        result = call(instance, model, clean, req, out)
        return {
            "ok": True,
            "result": result,
            "seconds": time.perf_counter() - start,
            "weights_changed": keeps_weights and _weights_digest(model) != before,
        }


def wipe(folder: Path) -> None:
    """Delete everything in ``folder`` but mount points (the sandbox's read-only binds
    below /tmp); what cannot be deleted stays."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if os.path.ismount(entry.path):
                    continue
                wipe(Path(entry.path))
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def constructor_report(cls: Any, instance: Any, params: dict[str, Any]) -> dict[str, list[str]]:
    """What the constructor did besides storing its parameters (the contract asks for
    nothing else): instance attributes it also set, and parameters it did not store as
    ``self.<name>``, the very object passed (or its default)."""
    names = {
        p.name: params.get(p.name, p.default)
        for p in inspect.signature(cls).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    attrs = dict(getattr(instance, "__dict__", {}))
    return {
        "extra": sorted(k for k in attrs if k not in names)[:20],
        "not_stored": sorted(n for n, v in names.items() if n not in attrs or attrs[n] is not v),
    }


def _fail(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "error": message}


def clean_data(bundle: Path) -> Any:
    """The CleanData a submission receives, read from a staged public bundle."""
    from harness.api import read_clean_data

    return read_clean_data(bundle)


def _weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def _mark(mark: bytes) -> None:
    """A task's begin or end mark on stderr (harness.sandbox.output), after what the task
    printed so far has left Python's buffers."""
    try:
        sys.stderr.flush()
        os.write(2, mark)
    except (OSError, ValueError):
        pass  # the submission closed stderr: its output is its own affair


def _send(stream: Any, reply: dict[str, Any]) -> None:
    """Send a reply; one that JSON cannot carry (NaN, nesting too deep, too big) goes as
    the submission's failure instead of taking the worker down."""
    try:
        protocol.send(stream, reply)
    except (ValueError, TypeError, RecursionError, protocol.ProtocolError) as exc:
        protocol.send(stream, _fail("output", f"the reply cannot be sent: {exc}"[:1000]))


def serve() -> None:
    proto_in, proto_out = _take_protocol_streams()
    session = Session()
    while True:
        req = protocol.receive(proto_in)
        if req is None or req.get("op") == "bye":
            return
        mark = str(req.get("mark") or "")
        if mark:
            _mark(begin_mark(mark))
        try:
            op = req.get("op")
            if op == "init":
                reply = session.init(req)
            elif op == "configure":
                reply = session.configure(req)
            elif op == "poison":
                reply = session.poison(req)
            else:
                reply = session.run(req)
        except Exception as exc:  # noqa: BLE001 - every submission failure becomes a reply
            tail = traceback.format_exc()[-4000:]
            reply = _fail("exception", f"{type(exc).__name__}: {exc}"[:1000])
            reply["traceback"] = tail
        if mark:
            _mark(end_mark(mark))
        _send(proto_out, reply)


if __name__ == "__main__":
    serve()
