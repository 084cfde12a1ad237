"""Execution: how submissions run on models.

- ``config``: ``RunConfig``, the options of one run (backend, limits, fuzz budget, seeds,
  ...), built once by the CLI and handed down to the runner.
- ``runner``: plans the missing (submission, model, track, replicate) tasks of a run, hands
  them out as jobs and stores each result as it arrives (the coordinator).
- ``jobs``: one job, all of one submission's tasks on one model, run on whatever process
  the executor chose (``harness.executors``), with warm sandboxes kept per process.
- ``task``: ``SubmissionRunner``, one sandboxed worker serving one submission's tasks.
- ``worker``: the other side of that sandbox, which imports the submission and makes the
  track's call.
- ``configure``: a learned detector's configure step on the released training split.
- ``goodnet``: export a repaired model as a CSAW-HackML GoodNet file and check it as the
  contest's grader would load it.
"""
