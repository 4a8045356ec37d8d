-- Gift codes: MySQL is the record (a code is unique, a visitor holds at most one per campaign);
-- Redis holds the pool of unclaimed codes for fast, atomic claims.
CREATE TABLE IF NOT EXISTS gift_codes (
    code        VARCHAR(32)  CHARACTER SET ascii NOT NULL PRIMARY KEY,
    campaign_id INT UNSIGNED NOT NULL,
    visitor     VARCHAR(64)  CHARACTER SET ascii NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    claimed_at  DATETIME(6)  NULL,
    UNIQUE KEY one_per_visitor (campaign_id, visitor)
) ENGINE=InnoDB;
