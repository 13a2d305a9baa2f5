"""The store: SQLModel models, the engine and sessions, Alembic migrations."""
