-- The Idempotency-Key of each keyed mint, scoped to the campaign, committed in the mint's own
-- transaction: a retry with a key found here answers the first mint's answer and mints nothing.
-- `requested` tells a reuse of the key for another count apart (422). Kept a day: every keyed
-- mint deletes a bounded batch of older rows by `created_at` (giftcodes.MINT_KEY_RETENTION_S).
CREATE TABLE IF NOT EXISTS gift_code_mints (
    campaign_id INT UNSIGNED    NOT NULL,
    idem_key    VARCHAR(255)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    requested   INT UNSIGNED    NOT NULL,
    minted      INT UNSIGNED    NOT NULL,
    available   BIGINT UNSIGNED NOT NULL,
    created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (campaign_id, idem_key),
    KEY created (created_at)
) ENGINE=InnoDB;
