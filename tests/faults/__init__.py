"""Fault tests: real Redis, PostgreSQL and processes killed at the worst moment."""
