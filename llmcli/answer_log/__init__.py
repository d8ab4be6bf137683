"""The answer log: every answer llmcli gives, kept in one local SQLite database.

The only package that imports `sqlite3`. `entry` is the plain record, `schema` its tables
and their migrations, `database` reads and writes them, `recorder` writes in the
background so that no answer waits for the disk, and `switch` says whether logging is on.
"""
