"""Shared adapters: what the stages (``streams``, ``sinks``, ``api``) have in common, below
them and above the domain core: settings, topic names and specs, Kafka publishing, the
PostgreSQL schema and its columns, the Redis cache and its keys."""
