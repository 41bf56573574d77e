"""authload."""
