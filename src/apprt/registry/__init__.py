"""The registry: publishers, uploads, validation checks, review, publication, search."""
