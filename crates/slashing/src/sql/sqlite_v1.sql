-- ferrosigner slashing protection, SQLite schema version 1.
-- Slots and epochs are INTEGER (signed 64-bit); the program refuses values >= 2^63.
-- A NULL signing_root means "unknown": it never equals anything.
CREATE TABLE metadata (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_validators_root BLOB NOT NULL
);
CREATE TABLE validators (
    id INTEGER PRIMARY KEY,
    pubkey BLOB NOT NULL UNIQUE,
    enabled INTEGER NOT NULL DEFAULT 1,
    block_slot_wm INTEGER,
    att_source_wm INTEGER,
    att_target_wm INTEGER
);
CREATE TABLE signed_blocks (
    validator_id INTEGER NOT NULL REFERENCES validators(id),
    slot INTEGER NOT NULL,
    signing_root BLOB,
    UNIQUE (validator_id, slot)
);
CREATE TABLE signed_attestations (
    validator_id INTEGER NOT NULL REFERENCES validators(id),
    source_epoch INTEGER NOT NULL,
    target_epoch INTEGER NOT NULL,
    signing_root BLOB,
    UNIQUE (validator_id, target_epoch)
);
CREATE INDEX signed_attestations_source ON signed_attestations (validator_id, source_epoch);
