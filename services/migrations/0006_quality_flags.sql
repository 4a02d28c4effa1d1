-- Data-quality flags (issue 15): a projection of its own with its own checkpoint, written in the
-- same transaction as its rows. It never touches the dashboard's tables: flags never change a figure.
CREATE TABLE quality_checkpoint (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO quality_checkpoint (name, position) VALUES ('flags', 0);

-- Every fact's effective value per metric (position: of the fact, or of its latest correction). The
-- baselines are the last values of a region (own) or of a parent's children (peers), read by index.
CREATE TABLE quality_values (
    event_id uuid    NOT NULL,
    metric   text    NOT NULL,
    campaign text    NOT NULL,
    region   text    NOT NULL,
    parent   text,
    type     text    NOT NULL,
    value    numeric NOT NULL,
    position bigint  NOT NULL,
    PRIMARY KEY (event_id, metric)
);
CREATE INDEX quality_values_own ON quality_values (region, type, metric, position);
CREATE INDEX quality_values_peers ON quality_values (campaign, parent, type, metric, position);
-- On an expression, so the planner cannot take it for the peers read (it did, filtering every sibling's row).
CREATE INDEX quality_values_national ON quality_values ((campaign || '|' || type || '|' || metric), position);

-- Sums per province subtree for the cross-event relation rules.
CREATE TABLE quality_sums (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    metric   text    NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric)
);

-- The first event with each (type, campaign, region, occurred_at, data): a later one is a possible duplicate.
CREATE TABLE quality_fingerprints (
    fingerprint bytea  PRIMARY KEY,
    event_id    uuid   NOT NULL,
    campaign    text   NOT NULL,
    position    bigint NOT NULL
);
CREATE INDEX quality_fingerprints_event ON quality_fingerprints (event_id);

CREATE TABLE quality_flags (
    id               text    PRIMARY KEY,
    code             text    NOT NULL,
    severity         text    NOT NULL,
    campaign         text    NOT NULL,
    event_id         uuid    NOT NULL,
    region           text    NOT NULL,
    type             text,
    metric           text,
    observed         text    NOT NULL,
    expected         text    NOT NULL,
    score            numeric NOT NULL,
    message_zh       text    NOT NULL,
    message_en       text    NOT NULL,
    basis            text    NOT NULL,
    related_event_id uuid,
    raised_at        bigint  NOT NULL,
    resolved_at      bigint,
    reviewed_at      bigint,
    review           jsonb
);
CREATE INDEX quality_flags_campaign ON quality_flags (campaign, score DESC, id);
CREATE INDEX quality_flags_event ON quality_flags (event_id);
CREATE INDEX quality_flags_related ON quality_flags (related_event_id) WHERE related_event_id IS NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON quality_checkpoint, quality_values, quality_sums,
             quality_fingerprints, quality_flags TO qmstats_app;
    END IF;
END $$;
