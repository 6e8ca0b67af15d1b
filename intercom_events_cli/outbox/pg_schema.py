"""The PostgreSQL outbox's schema: tables, the ``enqueue`` SQL entry point, migrations.

Everything lives in one schema of its own (default ``ievents``); nothing outside it is
created or changed. Its version is in ``meta`` (key ``schema_version``) and older
versions are migrated step by step, in one transaction, under an advisory lock so two
processes starting at once do not race.

Times are Unix seconds (``double precision``), as in the SQLite file, so rows read the
same from both stores. They are the database's clock (``clock_timestamp()``), never a
host's: relays on hosts whose clocks disagree still agree on leases and due times.

Versions: 1, the first; 2 adds ``claim_token`` (each claim's fencing token), makes
``claim_session`` the claimer's backend (pid and start, as in ``pg_stat_activity``) rather
than an advisory-lock key, and an ``enqueue`` that resolves ``created_at: "now"`` and
refuses events over :data:`MAX_EVENT_BYTES`; 3 adds ``destinations.workspace_id``: a
token's workspace, learned with GET /me, so that every token of a workspace delivers its
events (rows keep their binding; learning a token's workspace moves them to it), and
``enqueue(event, workspace)``: a row names its workspace (or takes the schema's default)
and is never delivered by a relay of another.
"""

from __future__ import annotations

SCHEMA_VERSION = 3
# The largest event ``enqueue`` takes, in bytes of JSON: an Intercom event is a name, a
# contact and at most a few metadata values; anything this large is a mistake, and rows
# this size would make every claim and inspection hold them in memory.
MAX_EVENT_BYTES = 65536
# PostgreSQL's reserved words (pg_get_keywords(), categories R and T, PostgreSQL 15): not
# usable unquoted as a schema name, and ievents writes its schema's name unquoted.
RESERVED_WORDS = frozenset(
    """
    all analyse analyze and any array as asc asymmetric authorization binary both
    case cast check collate collation column concurrently constraint create cross
    current_catalog current_date current_role current_schema current_time
    current_timestamp current_user default deferrable desc distinct do else end
    except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit
    localtime localtimestamp natural not notnull null offset on only or order outer
    overlaps placing primary references returning right select session_user similar
    some symmetric table tablesample then to trailing true union unique user using
    variadic verbose when where window with
    """.split()
)
# The NOTIFY channel is the schema's name plus this: relays LISTEN on it.
CHANNEL_SUFFIX = "_events"

_TABLES = """
CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {s}.destinations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    base_url text NOT NULL,
    api_version text NOT NULL,
    token_fingerprint text NOT NULL,
    token_hint text NOT NULL,
    failing_since double precision,
    last_failure_at double precision,
    last_success_at double precision,
    workspace_id text,
    UNIQUE (base_url, api_version, token_fingerprint)
);
CREATE TABLE {s}.workspace_names (name text PRIMARY KEY, workspace_id text NOT NULL);
CREATE TABLE {s}.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    payload text NOT NULL,
    event_name text NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    last_status integer,
    last_error_code text,
    last_error_message text,
    request_id text,
    created double precision NOT NULL,
    updated double precision NOT NULL,
    next_attempt_at double precision NOT NULL,
    owner text,
    lease_expires_at double precision,
    source text,
    source_line bigint,
    claim_session bigint,
    destination_id bigint REFERENCES {s}.destinations (id),
    validated boolean NOT NULL DEFAULT true,
    claim_token bigint,
    workspace text
);
CREATE INDEX events_due ON {s}.events (created, id) WHERE state = 'pending';
CREATE INDEX events_in_flight ON {s}.events (owner) WHERE state = 'in_flight';
CREATE INDEX events_by_state ON {s}.events (state, updated);
"""

# The transactional outbox: an application calls this inside its own transaction.
# SECURITY DEFINER: the caller needs EXECUTE on it, not rights on the tables. The row is
# stored as given and validated by ievents before delivery (an invalid one becomes a dead
# letter with the reason). A missing (or null) created_at and "now" are resolved here, to
# the database's clock at this call, before the de-duplication key is computed: two calls
# a second apart are two events, whenever they are delivered.
_ENQUEUE = """
CREATE OR REPLACE FUNCTION {s}.enqueue(event jsonb, workspace text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body jsonb := event;
    stamp double precision := extract(epoch FROM clock_timestamp());
    size integer;
    key text;
    new_id bigint;
    wanted text := nullif(btrim(workspace), '');
    target bigint;
BEGIN
    IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
        RAISE EXCEPTION '{s}.enqueue takes a JSON object, got %',
            coalesce(jsonb_typeof(body), 'NULL') USING ERRCODE = '22023';
    END IF;
    size := octet_length(body::text);
    IF size > {limit} THEN
        RAISE EXCEPTION '{s}.enqueue: the event is % bytes of JSON, over the limit of {limit} '
            'bytes (64 KiB)', size
            USING ERRCODE = '54000',
            HINT = 'an Intercom event is a name, a contact and a few metadata values: '
                   'keep large data out of its metadata';
    END IF;
    IF NOT body ? 'created_at' OR body -> 'created_at' = 'null'::jsonb
       OR (jsonb_typeof(body -> 'created_at') = 'string'
           AND lower(btrim(body ->> 'created_at')) = 'now') THEN
        body := body || jsonb_build_object('created_at', floor(stamp)::bigint);
    END IF;
    -- The workspace: the one named (a profile name ievents has seen, or a workspace id),
    -- else the schema's default (ievents outbox default-workspace). Bound to its
    -- destination when a token of it is known; else it waits for one, never for anyone.
    IF wanted IS NULL THEN
        SELECT m.value INTO wanted FROM {s}.meta AS m WHERE m.key = 'default_workspace';
    ELSE
        SELECT coalesce(max(n.workspace_id), wanted) INTO wanted
        FROM {s}.workspace_names AS n WHERE n.name = wanted;
    END IF;
    IF wanted IS NOT NULL THEN
        SELECT min(d.id) INTO target FROM {s}.destinations AS d WHERE d.workspace_id = wanted;
    END IF;
    key := 'sql:' || md5(body::text);
    INSERT INTO {s}.events AS e (dedup_key, payload, event_name, state, created, updated,
                                 next_attempt_at, source, validated, destination_id,
                                 workspace)
    VALUES (key, body::text, coalesce(body ->> 'event_name', ''), 'pending', stamp, stamp,
            stamp, 'sql', false, target, wanted)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING e.id INTO new_id;
    IF new_id IS NULL THEN
        SELECT e.id INTO new_id FROM {s}.events AS e WHERE e.dedup_key = key;
    END IF;
    PERFORM pg_notify('{s}{channel}', '');
    RETURN new_id;
END
$fn$;
REVOKE ALL ON FUNCTION {s}.enqueue(jsonb, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION {s}.enqueue(event jsonb) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT {s}.enqueue(event, NULL) $fn$;
REVOKE ALL ON FUNCTION {s}.enqueue(jsonb) FROM PUBLIC;
"""

# Each step takes a schema from the version before it to the next one.
# ``{s}`` is the schema; ``{enqueue}`` the current enqueue function (one statement block).
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE {s}.events ADD COLUMN claim_token bigint",
        # Claims made under version 1 name an advisory-lock key, which version 2 no longer
        # reads: they come back when their lease ends, as a claim of a lost host does.
        "UPDATE {s}.events SET claim_session = NULL WHERE state = 'in_flight'",
        # Rows enqueued before the cap that exceed it would be refused today: dead letters,
        # with the reason, before a claim ever loads them.
        "UPDATE {s}.events SET state = 'dead', validated = true, owner = NULL, "
        "lease_expires_at = NULL, claim_session = NULL, last_error_code = 'invalid_event', "
        "last_error_message = 'refused before delivery: larger than "
        + str(MAX_EVENT_BYTES)
        + " bytes of JSON', updated = extract(epoch FROM clock_timestamp()) "
        "WHERE state IN ('pending', 'in_flight') AND NOT validated "
        "AND octet_length(payload) > " + str(MAX_EVENT_BYTES),
        "{enqueue}",
    ],
    # 3: the workspace of each token, NULL until a flush, relay or check with that token
    # learns it; rows stay bound to their token's row until then (and are named so).
    # The workspace an SQL-enqueued row names (or the schema's default), kept until a
    # token of it is known; profile names ievents has seen, for enqueue to resolve.
    3: [
        "ALTER TABLE {s}.destinations ADD COLUMN workspace_id text",
        "ALTER TABLE {s}.events ADD COLUMN workspace text",
        "CREATE TABLE {s}.workspace_names (name text PRIMARY KEY, workspace_id text NOT NULL)",
        "{enqueue}",
    ],
}


def migration_statements(schema: str, step: int) -> list[str]:
    """The statements that take a schema from version ``step - 1`` to ``step``."""
    function = enqueue_function(schema)
    return [
        function if statement == "{enqueue}" else statement.replace("{s}", schema)
        for statement in MIGRATIONS[step]
    ]


def create_statements(schema: str) -> list[str]:
    """The statements that create a fresh schema at :data:`SCHEMA_VERSION`."""
    text = _TABLES.format(s=schema)
    statements = [part.strip() for part in text.split(";") if part.strip()]
    statements.append(enqueue_function(schema))
    return statements


def enqueue_function(schema: str) -> str:
    """``schema.enqueue(jsonb, text)`` and ``schema.enqueue(jsonb)`` (one block)."""
    return _ENQUEUE.format(s=schema, channel=CHANNEL_SUFFIX, limit=MAX_EVENT_BYTES)


def channel(schema: str) -> str:
    """The NOTIFY channel new events are announced on."""
    return schema + CHANNEL_SUFFIX
