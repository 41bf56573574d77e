"""The mock server: both auth APIs with real state, for tests and load runs."""
