"""The one exception hierarchy of alignment-monitor: every error a user can see is a MonitorError."""
from __future__ import annotations


class MonitorError(Exception):
    """Base error: a one-line message, a short title and an optional hint on what to try next."""

    title = "Error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (try: {self.hint})"


class ConfigError(MonitorError):
    title = "Configuration error"


class IngestError(MonitorError):
    title = "Ingest error"


class FormatError(IngestError):
    title = "Unknown log format"


class StorageError(MonitorError):
    title = "Storage error"


class QueryError(MonitorError):
    title = "Query error"


class SqlGuardError(QueryError):
    title = "Query refused"


class JobError(MonitorError):
    title = "Job failed"


class NotifyError(MonitorError):
    title = "Notification failed"


class ClassifierError(MonitorError):
    title = "Classifier error"
