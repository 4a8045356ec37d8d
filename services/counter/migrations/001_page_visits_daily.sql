-- Per-day ledger of visits (UTC days), the durable history behind the Redis totals.
CREATE TABLE IF NOT EXISTS page_visits_daily (
    page_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    day     DATE            NOT NULL,
    visits  BIGINT UNSIGNED NOT NULL DEFAULT 0,
    PRIMARY KEY (page_id, day)
) ENGINE=InnoDB;

-- One row per ledger batch applied: a retried batch whose first attempt did commit is
-- recognised and skipped, so no visit is counted twice.
CREATE TABLE IF NOT EXISTS counter_ledger_batches (
    batch_id   CHAR(32)    CHARACTER SET ascii NOT NULL PRIMARY KEY,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY applied_at (applied_at)
) ENGINE=InnoDB;
