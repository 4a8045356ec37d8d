-- Idempotency keys of recorded events (the `Idempotency-Key` header), scoped per user: a retry
-- with a key already here answers the first answer without a second insert. `fingerprint` is the
-- SHA-256 of the event as validated, so the same key with another body is told apart. Rows are
-- kept as long as the events they guard (the event tables are not purged either); a retention job
-- that deletes old events deletes the keys of the same age by `created_at`.
CREATE TABLE IF NOT EXISTS event_keys (
    user_id     BIGINT UNSIGNED NOT NULL,
    idem_key    VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint CHAR(64)        NOT NULL,
    created_at  DATETIME(6)     NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    KEY created (created_at)
) ENGINE=InnoDB;
