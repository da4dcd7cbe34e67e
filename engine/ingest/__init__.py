"""Ingestion: inbox layout, PDF extraction, chunking, the pipeline and the watcher."""
