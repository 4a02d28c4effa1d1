-- Read tables of the dashboard projection. Totals at every region level, per day, per
-- category, and fact counts per region and day (reporting completeness); plus the
-- projector's checkpoint, written in the same transaction as the rows.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_checkpoints (name, position) VALUES ('dashboard', 0);

CREATE TABLE projection_totals (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    parent   text,
    level    text    NOT NULL,
    metric   text    NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric)
);
CREATE INDEX projection_totals_children ON projection_totals (campaign, parent);

CREATE TABLE projection_daily (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    metric   text    NOT NULL,
    day      date    NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric, day)
);

CREATE TABLE projection_categories (
    campaign text    NOT NULL,
    region   text    NOT NULL,
    metric   text    NOT NULL,
    category text    NOT NULL,
    value    numeric NOT NULL,
    PRIMARY KEY (campaign, region, metric, category)
);

CREATE TABLE projection_reports (
    campaign text   NOT NULL,
    region   text   NOT NULL,
    parent   text,
    day      date   NOT NULL,
    events   bigint NOT NULL,
    PRIMARY KEY (campaign, region, day)
);
CREATE INDEX projection_reports_children ON projection_reports (campaign, parent, day);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'qmstats_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints, projection_totals, projection_daily,
            projection_categories, projection_reports TO qmstats_app;
    END IF;
END $$;
