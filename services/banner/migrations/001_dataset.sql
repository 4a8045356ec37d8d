-- The ingested datasets, one row per file (its content hash makes a second ingest a no-op).
CREATE TABLE IF NOT EXISTS banner_files (
    sha256         CHAR(64)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    quarter        TINYINT      NOT NULL,
    kind           VARCHAR(16)  NOT NULL,
    name           VARCHAR(255) NOT NULL,
    rows_loaded    INT          NOT NULL,
    rows_skipped   INT          NOT NULL,
    rows_malformed INT          NOT NULL,
    ingested_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;

-- Impressions are counted, not kept row by row: a repeated row is another impression.
CREATE TABLE IF NOT EXISTS banner_impressions (
    quarter     TINYINT         NOT NULL,
    campaign_id INT UNSIGNED    NOT NULL,
    banner_id   INT UNSIGNED    NOT NULL,
    impressions BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (quarter, campaign_id, banner_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS banner_clicks (
    quarter     TINYINT         NOT NULL,
    click_id    BIGINT UNSIGNED NOT NULL,
    campaign_id INT UNSIGNED    NOT NULL,
    banner_id   INT UNSIGNED    NOT NULL,
    PRIMARY KEY (quarter, click_id),
    KEY campaign_banner (quarter, campaign_id, banner_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS banner_conversions (
    quarter       TINYINT         NOT NULL,
    conversion_id BIGINT UNSIGNED NOT NULL,
    click_id      BIGINT UNSIGNED NOT NULL,
    revenue       DECIMAL(20, 6)  NOT NULL,
    PRIMARY KEY (quarter, conversion_id),
    KEY click (quarter, click_id)
) ENGINE=InnoDB;

-- The sets to serve, computed once per ingest; `generation` tells instances to reload.
CREATE TABLE IF NOT EXISTS banner_sets (
    quarter     TINYINT      NOT NULL,
    campaign_id INT UNSIGNED NOT NULL,
    x           INT          NOT NULL,
    rule        VARCHAR(32)  NOT NULL,
    banners     JSON         NOT NULL,
    PRIMARY KEY (quarter, campaign_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS banner_generation (
    id          TINYINT         NOT NULL PRIMARY KEY,
    generation  BIGINT UNSIGNED NOT NULL,
    computed_at DATETIME(6)     NOT NULL
) ENGINE=InnoDB;
