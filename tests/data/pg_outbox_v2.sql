-- The PostgreSQL outbox at schema version 2 (pg_schema.py before version 3), exactly,
-- as ievents made it (create_statements('ievents') at 1f9b252^), for the migration test.
-- One statement per block, separated by a line holding only --;
CREATE SCHEMA ievents
--;
CREATE TABLE ievents.meta (key text PRIMARY KEY, value text NOT NULL)
--;
CREATE TABLE ievents.destinations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    base_url text NOT NULL,
    api_version text NOT NULL,
    token_fingerprint text NOT NULL,
    token_hint text NOT NULL,
    failing_since double precision,
    last_failure_at double precision,
    last_success_at double precision,
    UNIQUE (base_url, api_version, token_fingerprint)
)
--;
CREATE TABLE ievents.events (
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
    destination_id bigint REFERENCES ievents.destinations (id),
    validated boolean NOT NULL DEFAULT true,
    claim_token bigint
)
--;
CREATE INDEX events_due ON ievents.events (created, id) WHERE state = 'pending'
--;
CREATE INDEX events_in_flight ON ievents.events (owner) WHERE state = 'in_flight'
--;
CREATE INDEX events_by_state ON ievents.events (state, updated)
--;
CREATE OR REPLACE FUNCTION ievents.enqueue(event jsonb) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    body jsonb := event;
    stamp double precision := extract(epoch FROM clock_timestamp());
    size integer;
    key text;
    new_id bigint;
BEGIN
    IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
        RAISE EXCEPTION 'ievents.enqueue takes a JSON object, got %',
            coalesce(jsonb_typeof(body), 'NULL') USING ERRCODE = '22023';
    END IF;
    size := octet_length(body::text);
    IF size > 65536 THEN
        RAISE EXCEPTION 'ievents.enqueue: the event is % bytes of JSON, over the limit of 65536 '
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
    key := 'sql:' || md5(body::text);
    INSERT INTO ievents.events AS e (dedup_key, payload, event_name, state, created, updated,
                                 next_attempt_at, source, validated)
    VALUES (key, body::text, coalesce(body ->> 'event_name', ''), 'pending', stamp, stamp,
            stamp, 'sql', false)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING e.id INTO new_id;
    IF new_id IS NULL THEN
        SELECT e.id INTO new_id FROM ievents.events AS e WHERE e.dedup_key = key;
    END IF;
    PERFORM pg_notify('ievents_events', '');
    RETURN new_id;
END
$fn$;
REVOKE ALL ON FUNCTION ievents.enqueue(jsonb) FROM PUBLIC;
--;
INSERT INTO ievents.meta (key, value) VALUES ('schema_version', '2')
