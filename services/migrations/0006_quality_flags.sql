-- Data-quality flags (issue 15): a projection of its own with its own checkpoint, written in the
-- same transaction as its rows. It never touches the dashboard's tables: flags never change a figure.
CREATE TABLE quality_checkpoint (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO quality_checkpoint (name, position) VALUES ('flags', 0);

-- Every fact's effective value per metric, for corrections and retractions of it.
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

-- The baselines as rolling windows, stored exactly as the fold left them: scope 'own' is a region's last
-- values of a type and metric (every campaign, campaign = ''), scope 'peers' the last values of a parent's
-- children in a campaign (region = the parent). One row per window: a batch reads and writes only its keys.
CREATE TABLE quality_baselines (
    scope    text  NOT NULL,
    campaign text  NOT NULL,
    region   text  NOT NULL,
    type     text  NOT NULL,
    metric   text  NOT NULL,
    entries  jsonb NOT NULL,  -- [[position, region, "value"], …] oldest first (region "" for own)
    PRIMARY KEY (scope, campaign, region, type, metric)
);

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
        GRANT SELECT, INSERT, UPDATE, DELETE ON quality_checkpoint, quality_values, quality_baselines,
            quality_sums, quality_fingerprints, quality_flags TO qmstats_app;
    END IF;
END $$;
