-- ferrosigner slashing protection, SQLite schema version 2: the global high watermark.
-- At most one row; while it exists, blocks at slot >= slot and attestations with a source or
-- target >= epoch are refused for every validator.
CREATE TABLE high_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL,
    slot INTEGER NOT NULL
);
