"""PDF reading: extraction (in a worker process), reading order and page/text cleaning."""
