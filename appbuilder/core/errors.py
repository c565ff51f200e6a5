"""Errors appbuild reports to its user.

Every failure a user can cause (a broken recipe, a missing source, a bad checksum,
an unresolvable dependency, ...) is raised as an :class:`AppbuildError` carrying a
message written for that user. The CLI prints the message and exits non-zero
without a traceback; anything else is a bug in appbuild and keeps its traceback.
"""

from __future__ import annotations


class AppbuildError(Exception):
    """A failure to report to the user as a plain message."""

    exit_code = 1


class RecipeError(AppbuildError):
    """A recipe cannot be loaded or is not valid (names the file and line)."""


class SourceError(AppbuildError):
    """A source cannot be fetched, verified or unpacked."""


class ChecksumMismatch(SourceError):
    """Fetched content does not have the sha256 the recipe pins."""

    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class UnsafeArchive(SourceError):
    """An archive member would be written outside the directory it unpacks into."""


class BuildFailed(AppbuildError):
    """A build action exited non-zero; the log is kept."""

    def __init__(self, message: str, log_path: str | None = None):
        super().__init__(message)
        self.log_path = log_path


class RepositoryError(AppbuildError):
    """The repository cannot do what was asked (unknown trove, bad version, ...)."""


class DependencyCycle(AppbuildError):
    """Build requirements form a cycle."""


class Interrupted(AppbuildError):
    """The user pressed Ctrl-C; whatever was half-done was discarded."""

    exit_code = 130
