"""The `nexus` command line, split by area."""
