"""Returns a Detection whose extra is nested 900 lists deep: just under what the worker's
JSON encoder can send, so the reply reaches the harness. The store's serialiser, a report
or a cluster's pickling recurses once per level and would raise RecursionError there,
stopping the whole run (every other submission's tasks with it), and again on a rerun.

The harness bounds a reply's nesting when it validates it: this task fails alone, with
"invalid output: the reply's result is nested more than 32 levels deep"."""

from harness.api import Detection

TRACKS = ["detect"]


class Entry:
    def detect(self, model, clean):
        deep: list = []
        for _ in range(900):
            deep = [deep]
        return Detection(score=0.5, extra={"deep": deep})
