-- The ledger's retention (COUNTER_LEDGER_RETENTION_DAYS) deletes rows by day: an index on `day`
-- makes that a range delete instead of a scan of every page's history.
CREATE INDEX IF NOT EXISTS by_day ON page_visits_daily (day);
