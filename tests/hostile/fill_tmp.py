"""Fills /tmp until the disk is full.

/tmp is a private tmpfs of 1 GiB per worker: the writes end with ENOSPC inside the
sandbox, the host's /tmp is untouched, and the task goes on to answer."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        block, written = b"\0" * (1 << 20), 0
        try:
            with open("/tmp/fill", "wb") as fh:
                while True:
                    fh.write(block)
                    written += len(block)
        except OSError as exc:
            print(f"/tmp full after {written >> 20} MiB: {exc.strerror}", flush=True)
        return Detection(score=0.0)
