"""What a role lacks to use a PostgreSQL outbox, said with the statement that grants it.

PostgreSQL's own "permission denied for schema ievents" names neither the role nor the
way out. When a statement is refused, :func:`describe_missing` asks the catalog what the
connected role may do and names the first thing missing: the schema to create, USAGE on
it, the table privileges, or the ownership a migration needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import Connection

TABLES = ("events", "meta", "destinations")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")

_FACTS = """
SELECT current_user, current_database(), n.oid IS NOT NULL,
       has_database_privilege(current_database(), 'CREATE'),
       CASE WHEN n.oid IS NOT NULL THEN has_schema_privilege(n.oid, 'USAGE') END,
       CASE WHEN n.oid IS NOT NULL THEN has_schema_privilege(n.oid, 'CREATE') END,
       pg_get_userbyid(n.nspowner),
       (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'meta')
FROM (SELECT 1) AS one LEFT JOIN pg_namespace AS n ON n.nspname = %s
"""


def describe_missing(db: Connection[Any], schema: str) -> tuple[str, str]:
    """(what is missing, how to grant it) for the connected role; ("", "") if nothing is."""
    facts = db.execute(_FACTS, (schema,)).fetchone()
    assert facts is not None
    role, database, has_schema, create_db, usage, create_schema, owner, has_meta = facts
    other = "or set IEVENTS_OUTBOX_SCHEMA to a schema this role owns"
    if not has_schema:
        if create_db:
            return "", ""
        return (
            f"the role {role} may not create the schema {schema}: it lacks CREATE on the "
            f"database {database}",
            f"as the database's owner: GRANT CREATE ON DATABASE {database} TO {role}; or "
            f"create it for the role: CREATE SCHEMA {schema} AUTHORIZATION {role}; {other}",
        )
    if not usage:
        return (
            f"the role {role} lacks USAGE on the schema {schema} (owned by {owner})",
            f"as {owner}: GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT, INSERT, "
            f"UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}; {other}",
        )
    if not has_meta:
        if create_schema:
            return "", ""
        return (
            f"the role {role} may not create the outbox tables: it lacks CREATE on the "
            f"schema {schema} (owned by {owner})",
            f"as {owner}: GRANT CREATE ON SCHEMA {schema} TO {role}; {other}",
        )
    lacking = [
        (table, privilege)
        for table in TABLES
        for privilege in TABLE_PRIVILEGES
        if not _has_table_privilege(db, f"{schema}.{table}", privilege)
    ]
    if lacking:
        names = sorted({privilege for _, privilege in lacking}, key=TABLE_PRIVILEGES.index)
        tables = sorted({f"{schema}.{table}" for table, _ in lacking})
        return (
            f"the role {role} lacks {', '.join(names)} on {', '.join(tables)}",
            f"as {owner}: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
            f"{schema} TO {role}; {other}",
        )
    return (
        f"the role {role} may not change the outbox's tables in the schema {schema} (owned "
        f"by {owner}); creating or migrating them takes their owner",
        f"run ievents once as {owner} (it migrates the schema), then again as {role}",
    )


def _has_table_privilege(db: Connection[Any], table: str, privilege: str) -> bool:
    found = db.execute(
        "SELECT to_regclass(%s) IS NULL OR has_table_privilege(%s, %s)",
        (table, table, privilege),
    ).fetchone()
    return bool(found and found[0])
