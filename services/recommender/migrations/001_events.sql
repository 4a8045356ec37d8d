-- Users' searches and purchases. The (user_id, time) indexes serve both "this user's recent rows"
-- and "these users' recent rows" (user_id IN (...) AND time >= window start), and cover the
-- columns scoring reads, so a user's events come from the index alone.
CREATE TABLE IF NOT EXISTS searches (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id     BIGINT UNSIGNED NOT NULL,
    query       VARCHAR(255)    NOT NULL DEFAULT '',
    category    VARCHAR(64)     NOT NULL,
    searched_at DATETIME(6)     NOT NULL,
    success     BOOLEAN         NOT NULL DEFAULT TRUE,
    KEY user_recent (user_id, searched_at, category),
    KEY recent (searched_at, category)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS purchases (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id      BIGINT UNSIGNED NOT NULL,
    product_name VARCHAR(255)    NOT NULL DEFAULT '',
    category     VARCHAR(64)     NOT NULL,
    amount       DECIMAL(12, 2)  NOT NULL DEFAULT 0,
    purchased_at DATETIME(6)     NOT NULL,
    KEY user_recent (user_id, purchased_at, category),
    KEY recent (purchased_at, category)
) ENGINE=InnoDB;
