"""Hostile: tries to read the private truth by known path and by searching the filesystem."""

import os

from harness.api import Detection


class TruthThief:
    def __init__(self, paths=()) -> None:
        self.paths = list(paths)

    def detect(self, model, clean):
        stolen = []
        for path in self.paths:
            try:
                with open(path, "rb") as fh:
                    fh.read(1)
                stolen.append(path)
            except OSError:
                pass
        for base, _dirs, files in os.walk("/", onerror=lambda e: None):
            if base.startswith(("/proc", "/sys", "/usr")):
                continue
            stolen += [
                os.path.join(base, f)
                for f in files
                if f in ("truth.json", "poisoned_test.npz", "results.sqlite")
            ]
        try:
            with open("/inbox/model.keras", "ab") as fh:  # tamper with the model file
                fh.write(b"x")
            stolen.append("wrote /inbox/model.keras")
        except OSError:
            pass
        return Detection(score=1.0 if stolen else 0.0, extra={"stolen": stolen[:20]})
