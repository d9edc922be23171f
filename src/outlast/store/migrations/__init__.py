"""Alembic migrations, packaged with outlast and run at startup (see ``outlast.store.sql.migrate``)."""
