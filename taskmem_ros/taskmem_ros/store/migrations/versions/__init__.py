"""Migration scripts; alembic ignores this file."""
