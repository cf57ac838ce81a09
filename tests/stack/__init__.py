"""Tests of the production-shaped stack: PostgreSQL store, compose file, Kibana objects."""
