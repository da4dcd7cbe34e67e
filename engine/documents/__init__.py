"""Documents: the catalogue of ingested files and the one place that replaces or removes a
document version."""
