-- ferrosigner slashing protection, PostgreSQL schema version 1.
-- Slots and epochs are BIGINT; the program refuses values >= 2^63 on both backends.
-- A NULL signing_root means "unknown": it never equals anything.
-- Verdict codes returned by the check functions: 0 inserted, 1 same data, 10.. refusals
-- (see Refusal::code in the Rust crate). The decision order matches src/rules.rs.
CREATE TABLE metadata (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    genesis_validators_root BYTEA NOT NULL
);
CREATE TABLE validators (
    id SERIAL PRIMARY KEY,
    pubkey BYTEA NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    block_slot_wm BIGINT,
    att_source_wm BIGINT,
    att_target_wm BIGINT
);
CREATE TABLE signed_blocks (
    validator_id INTEGER NOT NULL REFERENCES validators(id),
    slot BIGINT NOT NULL,
    signing_root BYTEA,
    UNIQUE (validator_id, slot)
);
CREATE TABLE signed_attestations (
    validator_id INTEGER NOT NULL REFERENCES validators(id),
    source_epoch BIGINT NOT NULL,
    target_epoch BIGINT NOT NULL,
    signing_root BYTEA,
    UNIQUE (validator_id, target_epoch)
);
CREATE INDEX signed_attestations_source ON signed_attestations (validator_id, source_epoch);

-- Records the genesis validators root if none is recorded; returns TRUE when it matches.
CREATE FUNCTION fs_genesis_ok(p_gvr BYTEA) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_gvr BYTEA;
BEGIN
    SELECT genesis_validators_root INTO v_gvr FROM metadata WHERE id = 1;
    IF v_gvr IS NULL THEN
        INSERT INTO metadata (id, genesis_validators_root) VALUES (1, p_gvr) ON CONFLICT (id) DO NOTHING;
        SELECT genesis_validators_root INTO v_gvr FROM metadata WHERE id = 1;
    END IF;
    RETURN v_gvr = p_gvr;
END
$$;

-- Returns the validator's id, registering it if unknown, and takes its advisory
-- transaction lock (class 1179862864 = 'FSLP'), held until the calling transaction ends.
CREATE FUNCTION fs_lock_validator(p_pubkey BYTEA) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_id INTEGER;
BEGIN
    SELECT id INTO v_id FROM validators WHERE pubkey = p_pubkey;
    IF v_id IS NULL THEN
        INSERT INTO validators (pubkey) VALUES (p_pubkey) ON CONFLICT (pubkey) DO NOTHING;
        SELECT id INTO v_id FROM validators WHERE pubkey = p_pubkey;
    END IF;
    PERFORM pg_advisory_xact_lock(1179862864, v_id);
    RETURN v_id;
END
$$;

CREATE FUNCTION fs_check_block(p_gvr BYTEA, p_pubkey BYTEA, p_slot BIGINT, p_root BYTEA)
RETURNS SMALLINT LANGUAGE plpgsql AS $$
DECLARE
    v_id INTEGER;
    v_enabled BOOLEAN;
    v_wm BIGINT;
    v_found BOOLEAN;
    v_root BYTEA;
BEGIN
    IF NOT fs_genesis_ok(p_gvr) THEN RETURN 18; END IF;
    v_id := fs_lock_validator(p_pubkey);
    -- Read after the lock: a fresh snapshot sees everything committed before we got it.
    SELECT enabled, block_slot_wm INTO v_enabled, v_wm FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN RETURN 19; END IF;
    IF v_wm IS NOT NULL AND p_slot <= v_wm THEN RETURN 11; END IF;
    SELECT TRUE, signing_root INTO v_found, v_root
        FROM signed_blocks WHERE validator_id = v_id AND slot = p_slot;
    IF v_found THEN
        IF v_root IS NOT NULL AND p_root IS NOT NULL AND v_root = p_root THEN RETURN 1; END IF;
        RETURN 10;
    END IF;
    INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (v_id, p_slot, p_root);
    RETURN 0;
END
$$;

CREATE FUNCTION fs_check_attestation(p_gvr BYTEA, p_pubkey BYTEA, p_source BIGINT, p_target BIGINT, p_root BYTEA)
RETURNS SMALLINT LANGUAGE plpgsql AS $$
DECLARE
    v_id INTEGER;
    v_enabled BOOLEAN;
    v_swm BIGINT;
    v_twm BIGINT;
    v_found BOOLEAN;
    v_root BYTEA;
BEGIN
    IF NOT fs_genesis_ok(p_gvr) THEN RETURN 18; END IF;
    v_id := fs_lock_validator(p_pubkey);
    SELECT enabled, att_source_wm, att_target_wm INTO v_enabled, v_swm, v_twm FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN RETURN 19; END IF;
    IF p_source > p_target THEN RETURN 12; END IF;
    IF v_twm IS NOT NULL AND p_target <= v_twm THEN RETURN 17; END IF;
    IF v_swm IS NOT NULL AND p_source < v_swm THEN RETURN 16; END IF;
    SELECT TRUE, signing_root INTO v_found, v_root
        FROM signed_attestations WHERE validator_id = v_id AND target_epoch = p_target;
    IF v_found THEN
        IF v_root IS NOT NULL AND p_root IS NOT NULL AND v_root = p_root THEN RETURN 1; END IF;
        RETURN 13;
    END IF;
    -- Each surround search walks only the narrow side of its range (targets above the new target, sources
    -- above the new source; usually empty). `+ 0` keeps the planner from walking the other index over the
    -- validator's whole history, which the cached generic plan otherwise does.
    IF EXISTS (SELECT 1 FROM signed_attestations
               WHERE validator_id = v_id AND target_epoch > p_target AND source_epoch + 0 < p_source) THEN
        RETURN 15;
    END IF;
    IF EXISTS (SELECT 1 FROM signed_attestations
               WHERE validator_id = v_id AND source_epoch > p_source AND target_epoch + 0 < p_target) THEN
        RETURN 14;
    END IF;
    INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
        VALUES (v_id, p_source, p_target, p_root);
    RETURN 0;
END
$$;
