"""Alembic environment: migrations run on the connection the caller hands in (webserver/stores/schema.py
puts it in `config.attributes["connection"]`), never on a URL read from a file."""
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
