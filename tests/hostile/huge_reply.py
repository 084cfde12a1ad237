"""Returns a reply of about 9 MiB (in Detection.extra), over the protocol's message cap.

The worker cannot send it, answers that instead, and the task fails as invalid output."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        return Detection(score=0.5, extra={"blob": "a" * (9 << 20)})
