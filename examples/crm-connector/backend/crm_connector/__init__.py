"""CRM Connector backend."""
