"""The running engine: the service loop, the state file the panel reads, and the writer lock."""
