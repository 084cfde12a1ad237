"""Writes one file past the per-file size cap (RLIMIT_FSIZE).

The kernel refuses the write past the cap with EFBIG (Python ignores SIGXFSZ), the
submission sees the error and answers anyway."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        written = 0
        try:
            with open("/scratch/big", "wb") as fh:
                for _ in range(4096):
                    fh.write(b"\2" * (1 << 20))
                    fh.flush()
                    written += 1
        except OSError as exc:
            print(f"refused after {written} MiB: {exc.strerror}", flush=True)
        return Detection(score=0.0)
