"""Chunk storage in ChromaDB."""
