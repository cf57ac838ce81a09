"""Tests of the production-shaped stack: PostgreSQL store, Redis LSH, compose file, Kibana objects."""
