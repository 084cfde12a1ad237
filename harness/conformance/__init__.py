"""`harness submission check`: the conformance suite (``suite``) and its checks
(``checks``)."""

from harness.conformance.checks import CHECK_PROFILE, CheckResult
from harness.conformance.suite import CHECKS, NAMES, check_submission

__all__ = ["CHECKS", "CHECK_PROFILE", "NAMES", "CheckResult", "check_submission"]
