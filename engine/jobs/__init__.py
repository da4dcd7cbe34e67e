"""Job history: what ran, on which files, with what result."""

from engine.jobs.base import FileResult, FileStatus, JobRecord, JobTracker

__all__ = ["FileResult", "FileStatus", "JobRecord", "JobTracker"]
