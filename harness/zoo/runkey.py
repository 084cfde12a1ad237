"""A run's secret key: what a model's anonymous id, the seed its submission is handed and
the draw of its evaluation inputs are derived from.

Each of the three used to be a plain hash of public names (the run id, which defaults to
the profile's name, and the model id, which a shipped profile lists), so a hand-in could
try likely run ids and name the model it was given, or replay the draw of its inputs. Each
is now an HMAC-SHA256 under a key of 32 random bytes (``secrets.token_bytes``), drawn on
the run's first use and kept, so that a resumed run (`harness run` again with the same run
id and ``$HARNESS_HOME``) derives the very same ids and seeds:

- ``$HARNESS_HOME/run-keys/<sha256 of the run id>.key``, mode 0600 in a 0700 folder. No
  sandbox mounts ``$HARNESS_HOME``; the replicates of a run (``RUN#seedK``) share its key.
- ``HARNESS_RUN_KEY`` (hex, at least 16 bytes), when set, is the key of every run: for a
  research run that must give the same ids on another machine. It is not an official
  setting: anyone who knows the key can name every model of the run.

The seed a submission is handed and the evaluation seed come from one key under different
purposes: a hand-in reads its own seed back from NumPy's state, and the evaluation seed
must stay out of its reach (with it, the draw of its inputs could be replayed).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import harness_home

ENV_KEY = "HARNESS_RUN_KEY"
KEY_BYTES = 32
MIN_ENV_BYTES = 16
#: A replicate's run id (``harness.execution.task.replicate_key``): it shares its run's key.
_REPLICATE = re.compile(r"#seed\d+$")


@dataclass(frozen=True)
class RunKey:
    """One run's secret; every value it derives is an HMAC of a purpose, the replicate's
    run id and the model id (JSON-encoded, so no two triples share a message)."""

    secret: bytes = field(repr=False)

    def digest(self, purpose: str, run_id: str, model_id: str) -> bytes:
        message = json.dumps([purpose, run_id, model_id]).encode()
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def anonymous_id(self, run_id: str, model_id: str) -> str:
        """The id the staged card carries (as long as it always was: the card's size is
        the same for every model)."""
        return "model-" + self.digest("anonymous-id", run_id, model_id).hex()[:10]

    def task_seed(self, run_id: str, model_id: str) -> int:
        """The seed a submission's task is handed (and seeds NumPy, Keras, TensorFlow)."""
        return int.from_bytes(self.digest("task-seed", run_id, model_id)[:4], "big") % 2**31

    def eval_seed(self, run_id: str, model_id: str) -> int:
        """The seed of a task's evaluation inputs (``harness.zoo.evalset``): 128 bits that
        never reach the sandbox."""
        return int.from_bytes(self.digest("eval-inputs", run_id, model_id)[:16], "big")


def base_run_id(run_id: str) -> str:
    """The run a replicate's run id belongs to (``RUN#seed2`` -> ``RUN``)."""
    return _REPLICATE.sub("", run_id)


def keys_dir() -> Path:
    """Where run keys are kept: under ``$HARNESS_HOME``, readable by its owner alone."""
    path = harness_home() / "run-keys"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def key_path(run_id: str) -> Path:
    name = hashlib.sha256(base_run_id(run_id).encode()).hexdigest()[:32]
    return keys_dir() / f"{name}.key"


def _env_key() -> RunKey | None:
    raw = os.environ.get(ENV_KEY, "").strip()
    if not raw:
        return None
    try:
        secret = bytes.fromhex(raw)
    except ValueError:
        secret = b""
    if len(secret) < MIN_ENV_BYTES:
        raise HarnessError(
            f"{ENV_KEY} is not a hex key of at least {MIN_ENV_BYTES} bytes",
            fix=f"unset it (each run then draws its own key) or set {2 * MIN_ENV_BYTES}+ hex digits",
        )
    return RunKey(secret)


def _read(path: Path) -> RunKey:
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise HarnessError(
            "the run's key file is damaged",
            path=path,
            fix="restore it from a backup; deleting it gives the run new model ids and "
            "evaluation inputs, so start it again under a new --run-id",
        )
    return RunKey(secret)


def _create(path: Path) -> None:
    """Write a fresh key to ``path`` unless one is there: written to a private file first
    and linked into place, so two processes that start a run at once keep one key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run_key(run_id: str) -> RunKey:
    """The key of ``run_id`` (and of its replicates): ``HARNESS_RUN_KEY`` when set, else
    the one kept under ``$HARNESS_HOME``, drawn on first use."""
    from_env = _env_key()
    if from_env is not None:
        return from_env
    path = key_path(run_id)
    if not path.is_file():
        _create(path)
    return _read(path)
