"""Team Notes backend."""
