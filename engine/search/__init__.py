"""Search: the hybrid searcher, the fusion of vector and BM25 scores, the lexical index, and
retrieval evaluation."""
