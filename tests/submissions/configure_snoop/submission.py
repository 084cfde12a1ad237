"""Hunts for truth from configure(); reports what it saw from detect()."""

import json
import os
from pathlib import Path

from harness.api import Detection, configured_dir

SKIP = ("/proc", "/sys", "/dev", "/usr")
GUESSES = (
    "~/.cache/backdoor-harness",
    "/root/.cache/backdoor-harness",
    "/home",
)


class ConfigureSnoop:
    def configure(self, training_dir, out_dir):
        found, seen = [], 0
        for root, dirs, files in os.walk("/", onerror=lambda e: None):
            dirs[:] = [d for d in dirs if not os.path.join(root, d).startswith(SKIP)]
            seen += len(files)
            for name in files:
                if name in ("truth.json", "results.sqlite", "triggers.npz", "index.json"):
                    found.append(os.path.join(root, name))
        reachable = [g for g in GUESSES if Path(os.path.expanduser(g)).exists()]
        env = {k: v for k, v in os.environ.items() if k.startswith("HARNESS")}
        report = {"found": sorted(found), "files_seen": seen, "reachable": reachable, "env": env}
        (Path(out_dir) / "found.json").write_text(json.dumps(report))

    def detect(self, model, clean):
        folder = configured_dir()
        report = json.loads((folder / "found.json").read_text())
        try:
            (folder / "tampered").write_text("x")
            report["wrote_configured"] = True
        except OSError:
            report["wrote_configured"] = False
        return Detection(score=0.5, extra=report)
