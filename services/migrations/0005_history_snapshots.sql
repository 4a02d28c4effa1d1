-- Snapshots of the dashboard read tables, so figures at a past position cost O(1) of the log.
-- Every SNAPSHOT_EVERY positions (projections/projector.py) the projector records, in the same transaction
-- as its checkpoint, the rows of projection_totals, projection_categories and projection_reports that
-- changed since the previous snapshot (changed_window > previous snapshot), with their values at that position.
-- changed_window is the snapshot position that follows a row's last change: ceil(position / SNAPSHOT_EVERY)
-- times SNAPSHOT_EVERY of the last event that touched it (projector batches never straddle a snapshot).
-- A row's value at snapshot S is its version with the greatest position <= S; a row with no version <= S
-- did not exist at S. Daily rows are not kept: no past-position read shows a daily series.
ALTER TABLE projection_totals ADD COLUMN changed_window bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_categories ADD COLUMN changed_window bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_reports ADD COLUMN changed_window bigint NOT NULL DEFAULT 0;
ALTER TABLE projection_daily ADD COLUMN changed_window bigint NOT NULL DEFAULT 0;
-- Rows projected before this migration count as changed, so the first snapshot copies them all.
UPDATE projection_totals SET changed_window = (SELECT position FROM projection_checkpoints WHERE name = 'dashboard');
UPDATE projection_categories SET changed_window = (SELECT position FROM projection_checkpoints WHERE name = 'dashboard');
UPDATE projection_reports SET changed_window = (SELECT position FROM projection_checkpoints WHERE name = 'dashboard');
UPDATE projection_daily SET changed_window = (SELECT position FROM projection_checkpoints WHERE name = 'dashboard');

CREATE TABLE projection_snapshots (
    position   bigint      PRIMARY KEY,
    taken_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE snapshot_totals (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    metric   text    NOT NULL,
    position bigint  NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric, position)
);

CREATE TABLE snapshot_categories (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    metric   text    NOT NULL,
    category text    NOT NULL,
    position bigint  NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric, category, position)
);

CREATE TABLE snapshot_reports (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    day      date    NOT NULL,
    position bigint  NOT NULL,
    events   bigint  NOT NULL,
    PRIMARY KEY (campaign, region, day, position)
);

-- Provenance of a region's figure pages through the originals under the region's code prefix plus the facts
-- a correction moved under it; this finds the latter without reading every correction's row.
CREATE INDEX events_corrections_by_region ON events (campaign, region text_pattern_ops)
    INCLUDE (position, target_event_id) WHERE type = 'event_corrected';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON projection_snapshots, snapshot_totals, snapshot_categories,
            snapshot_reports TO qmstats_app;
    END IF;
END $$;
