"""The SQL database: engine and sessions, the ORM tables, tenant scope, keyset
paging and the Alembic migrations that ship in the package."""
