"""Sales Dashboard backend."""
