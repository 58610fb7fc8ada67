"""Your own tables, one module per table (or per group of tables).

A module here defines its models on ``Base`` from ``..models`` (a datetime
column is stored as timezone-aware UTC, as the template's are). Every module
whose name does not start with "_" is imported for the migrations by
``models.load_tables``, so a new table is a new file in this folder followed
by a new migration: no other file changes, and template updates never touch
yours.
"""
