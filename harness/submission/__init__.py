"""Submissions: the submission.toml manifest, output validation and the conformance check."""
