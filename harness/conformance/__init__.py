"""`harness submission check`: the conformance suite (``suite``), its checks (``checks``)
and how each check gets its inputs and gives its products (``wiring``)."""

from harness.conformance.checks import CHECK_PROFILE
from harness.conformance.suite import CHECKS, NAMES, check_submission
from harness.conformance.wiring import CheckResult

__all__ = ["CHECKS", "CHECK_PROFILE", "NAMES", "CheckResult", "check_submission"]
