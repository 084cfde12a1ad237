"""Results: what a run measured, kept in one SQLite file.

- ``schema``: the tables, their version and how older stores are brought up to date.
- ``records``: the typed rows (``TaskRecord``, ``ModelFacts``, ``AttackInstance``).
- ``store``: ``ResultsStore``, the only writer and reader of the file.
- ``damage`` and ``recover``: a damaged file recognised, and its readable rows saved.
- ``diff``: every task whose facts, outputs or scores differ between two stores.
"""

from harness.results.damage import StoreDamaged
from harness.results.records import AttackInstance, ModelFacts, TaskRecord, UnstorableTask
from harness.results.schema import SCHEMA_VERSION
from harness.results.store import ResultsStore

__all__ = [
    "SCHEMA_VERSION",
    "AttackInstance",
    "ModelFacts",
    "ResultsStore",
    "StoreDamaged",
    "TaskRecord",
    "UnstorableTask",
]
