"""Alembic migrations of caviar's study store (run with ``caviar db upgrade``)."""
