"""Lexical (BM25) search beside the vectors, with Indonesian text handling."""
