"""The options of one run, as one object from the CLI down.

`harness run`, `harness reproduce`, `harness attack run` and `harness grade` build one
``RunConfig`` from their options and hand it down: through ``harness.grading.batch``,
``harness.attack_track.run`` and ``harness.reproduce`` to the runner
(``harness.execution.runner``), which reads each option where it is used. Each option has
its default here alone (the fuzz budget's is the contract's, ``harness.api``).

The live objects a run uses are not options and travel beside the config: the results
and zoo stores, the executor (a pool or a Dask client) and the progress reporter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.api import DEFAULT_FUZZ_BUDGET
from harness.sandbox.limits import SandboxLimits
from harness.tracks import RunOptions


@dataclass(frozen=True)
class RunConfig:
    """How a run runs its tasks (what it runs, the submissions, profile and tracks, is
    named beside it)."""

    #: The sandbox backend: ``auto`` (bwrap, or a one-line refusal where it cannot run),
    #: ``bwrap``, or ``process`` (no isolation: only when named).
    backend: str = "auto"
    #: The run the tasks are stored under; None: the caller's default (a run's profile,
    #: ``reproduce-<profile>`` for a reproduction; grading always uses its own).
    run_id: str | None = None
    #: What the user typed, kept with the run for its reports; None: nothing recorded.
    command: str | None = None
    #: The caps of each sandboxed worker (a submission may ask for less, never more).
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    #: Inputs a fuzzer's ``generate()`` may return per model (the fuzz track).
    fuzz_budget: int = DEFAULT_FUZZ_BUDGET
    #: Replicates per task: every task runs under seeds 0 .. ``seeds`` - 1; a later run
    #: with more adds only the missing replicates.
    seeds: int = 1
    #: The profile whose training split learned detectors (``configure = true``) learn
    #: from; None: the run's own profile's.
    configure_on: str | None = None
    #: Run again the tasks stored as over their wall-clock limit (their records are
    #: replaced); other failures stay as they are.
    retry_timeouts: bool = False

    def track_options(self) -> RunOptions:
        """The options the tracks read when they prepare a task (sent with every job)."""
        return RunOptions(fuzz_budget=self.fuzz_budget)
