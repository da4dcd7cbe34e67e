"""Helpers for tests that need more than fixtures: a Docker engine and base image."""
