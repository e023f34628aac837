"""Installing apps into organizations: the ten-step job, artifacts and environments."""
