"""PostgreSQL: connection, migrations, repositories, the write-behind writer and its spool,
the loader that rebuilds the engine at start, and the embedded server used by default.

Imports point down the house: `store` may use `engine` records, never `web`.
"""
