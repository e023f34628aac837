"""Users, roles and API tokens: who may call the platform."""
