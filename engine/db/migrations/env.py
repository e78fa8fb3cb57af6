"""Alembic environment: the URL comes from Settings via engine.db.migrate."""

from alembic import context
from sqlalchemy import create_engine, pool

from engine.db.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""
connectable = create_engine(url, poolclass=pool.NullPool)

with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
