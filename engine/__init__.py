"""OpenClass Nexus: offline-first curriculum knowledge engine."""

__version__ = "0.1.0"
