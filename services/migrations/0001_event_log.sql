-- The event log: append-only, one global order, hash-chained.
-- Privileges go to the group role qmstats_app; the service logs in as a member of it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        CREATE ROLE qmstats_app NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role qmstats_app; grant privileges to the service role by hand';
END $$;

CREATE TABLE events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    event_id        uuid        NOT NULL UNIQUE,
    type            text        NOT NULL,
    schema_version  smallint    NOT NULL,
    campaign        text        NOT NULL,
    region          text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    recorded_by     text        NOT NULL,
    request_id      text        NOT NULL,
    target_event_id uuid,
    data            jsonb       NOT NULL,
    content_hash    bytea       NOT NULL,
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL
);
COMMENT ON TABLE events IS 'append-only: UPDATE, DELETE and TRUNCATE are refused by triggers';

-- Corrections and retractions are looked up by the event they refer to.
CREATE INDEX events_by_target ON events (target_event_id) WHERE target_event_id IS NOT NULL;
-- A campaign's state is the fold of its lifecycle events.
CREATE INDEX events_campaign_lifecycle ON events (campaign, position)
    WHERE type IN ('campaign_opened', 'campaign_closed', 'campaign_reopened');

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'fix a mistake with a later event_corrected or event_retracted event';
END $$;

CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TABLE api_keys (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('reporter', 'viewer', 'auditor', 'admin')),
    region      text,
    token_hash  bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK ((role = 'reporter') = (region IS NOT NULL))
);

CREATE TABLE region_lists (
    year        integer     PRIMARY KEY,
    codes       integer     NOT NULL,
    source      text        NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE region_codes (
    year integer NOT NULL REFERENCES region_lists (year),
    code text    NOT NULL,
    name text    NOT NULL,
    PRIMARY KEY (year, code)
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        GRANT USAGE ON SCHEMA public TO qmstats_app;
        REVOKE ALL ON events FROM qmstats_app;
        GRANT SELECT, INSERT ON events TO qmstats_app;
        GRANT SELECT ON api_keys, region_lists, region_codes, schema_migrations TO qmstats_app;
    END IF;
END $$;
