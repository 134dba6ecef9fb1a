"""Alembic migrations of the episodic store (run in code by ``EpisodicStore.open``)."""
