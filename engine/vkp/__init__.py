"""Versioned knowledge packages: a grade/subject's chunks and vectors, signed, in one file."""
