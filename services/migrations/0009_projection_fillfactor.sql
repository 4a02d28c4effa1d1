-- The dashboard's read tables are updated in place on every projector batch (value + changed_window, neither
-- indexed). With room left on each page PostgreSQL makes those updates HOT: the new row version goes on the
-- same page and no index entry is written. Measured with apply_batch on a warm log (2,250 events after 2,250,
-- batches of 160): PostgreSQL's CPU per event 100 -> 83 µs at fillfactor 50. The tables hold a row per key
-- (region, metric, day or category), not per event, so the space stays small. Number 0009: 0008 is taken by
-- the flags branch. Rebuilt tables copy these options (projections/rebuild.py).
ALTER TABLE projection_totals SET (fillfactor = 50);
ALTER TABLE projection_daily SET (fillfactor = 50);
ALTER TABLE projection_categories SET (fillfactor = 50);
ALTER TABLE projection_reports SET (fillfactor = 50);
