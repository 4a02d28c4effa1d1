-- The flags projection keeps one row per fact, not one per metric (issue 15): writing three rows and their
-- index entries per event was about a third of the flags projector's time, and every baseline is decided
-- per fact anyway (projections/quality.py). amounts: metric → the value as a decimal string (exact), for
-- every metric of the fact's type. Rows projected before this migration move over in place.
CREATE TABLE quality_facts (
    event_id uuid   PRIMARY KEY,
    campaign text   NOT NULL,
    region   text   NOT NULL,
    parent   text,
    type     text   NOT NULL,
    amounts  jsonb  NOT NULL,
    position bigint NOT NULL
);
INSERT INTO quality_facts (event_id, campaign, region, parent, type, amounts, position)
SELECT event_id, min(campaign), min(region), min(parent), min(type), jsonb_object_agg(metric, value::text),
       max(position)
FROM quality_values GROUP BY event_id;
DROP TABLE quality_values;

-- The baselines are the last facts of a region (own), of a parent's children (peers) or of every region
-- (national) for a type, read by index newest first.
CREATE INDEX quality_facts_own ON quality_facts (region, type, position);
CREATE INDEX quality_facts_peers ON quality_facts (campaign, parent, type, position);
-- On an expression, so the planner cannot take it for the peers read (it did, filtering every sibling's row).
CREATE INDEX quality_facts_national ON quality_facts ((campaign || '|' || type), position);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON quality_facts TO qmstats_app;
    END IF;
END $$;
