-- ferrosigner slashing protection, PostgreSQL schema version 2: the global high watermark, and
-- check functions that return the evidence of a refusal with its code.
--
-- Check results (o_code, o_a, o_b, o_root): o_code 0 inserted, 1 same data, 10.. refusals (see
-- RefusalReason::code in ferrosigner-slashing-rules); the evidence by code:
--   10 double proposal: o_a = slot, o_root = the recorded root
--   11/16/17 low watermark: o_a = the watermark
--   13/14/15 double/surrounding/surrounded vote: o_a = source, o_b = target, o_root = root of the
--            recorded attestation (surrounded: lowest target; surrounding: lowest source, target)
--   20 high watermark: o_a = epoch, o_b = slot
CREATE TABLE high_watermark (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL,
    slot BIGINT NOT NULL
);

DROP FUNCTION fs_check_block(BYTEA, BYTEA, BIGINT, BYTEA);
DROP FUNCTION fs_check_attestation(BYTEA, BYTEA, BIGINT, BIGINT, BYTEA);

CREATE FUNCTION fs_check_block(p_gvr BYTEA, p_pubkey BYTEA, p_slot BIGINT, p_root BYTEA,
    OUT o_code SMALLINT, OUT o_a BIGINT, OUT o_b BIGINT, OUT o_root BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
    v_id INTEGER;
    v_enabled BOOLEAN;
    v_wm BIGINT;
    v_hw_epoch BIGINT;
    v_hw_slot BIGINT;
    v_found BOOLEAN;
    v_root BYTEA;
BEGIN
    IF NOT fs_genesis_ok(p_gvr) THEN o_code := 18; RETURN; END IF;
    v_id := fs_lock_validator(p_pubkey);
    -- Read after the lock: a fresh snapshot sees everything committed before we got it.
    SELECT enabled, block_slot_wm INTO v_enabled, v_wm FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN o_code := 19; RETURN; END IF;
    SELECT epoch, slot INTO v_hw_epoch, v_hw_slot FROM high_watermark WHERE id = 1;
    IF v_hw_slot IS NOT NULL AND p_slot >= v_hw_slot THEN
        o_code := 20; o_a := v_hw_epoch; o_b := v_hw_slot; RETURN;
    END IF;
    IF v_wm IS NOT NULL AND p_slot <= v_wm THEN o_code := 11; o_a := v_wm; RETURN; END IF;
    SELECT TRUE, signing_root INTO v_found, v_root
        FROM signed_blocks WHERE validator_id = v_id AND slot = p_slot;
    IF v_found THEN
        IF v_root IS NOT NULL AND p_root IS NOT NULL AND v_root = p_root THEN o_code := 1; RETURN; END IF;
        o_code := 10; o_a := p_slot; o_root := v_root; RETURN;
    END IF;
    INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (v_id, p_slot, p_root);
    o_code := 0;
END
$$;

CREATE FUNCTION fs_check_attestation(p_gvr BYTEA, p_pubkey BYTEA, p_source BIGINT, p_target BIGINT, p_root BYTEA,
    OUT o_code SMALLINT, OUT o_a BIGINT, OUT o_b BIGINT, OUT o_root BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
    v_id INTEGER;
    v_enabled BOOLEAN;
    v_swm BIGINT;
    v_twm BIGINT;
    v_hw_epoch BIGINT;
    v_hw_slot BIGINT;
    v_found BOOLEAN;
    v_source BIGINT;
    v_root BYTEA;
BEGIN
    IF NOT fs_genesis_ok(p_gvr) THEN o_code := 18; RETURN; END IF;
    v_id := fs_lock_validator(p_pubkey);
    SELECT enabled, att_source_wm, att_target_wm INTO v_enabled, v_swm, v_twm FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN o_code := 19; RETURN; END IF;
    IF p_source > p_target THEN o_code := 12; RETURN; END IF;
    SELECT epoch, slot INTO v_hw_epoch, v_hw_slot FROM high_watermark WHERE id = 1;
    IF v_hw_epoch IS NOT NULL AND (p_source >= v_hw_epoch OR p_target >= v_hw_epoch) THEN
        o_code := 20; o_a := v_hw_epoch; o_b := v_hw_slot; RETURN;
    END IF;
    IF v_twm IS NOT NULL AND p_target <= v_twm THEN o_code := 17; o_a := v_twm; RETURN; END IF;
    IF v_swm IS NOT NULL AND p_source < v_swm THEN o_code := 16; o_a := v_swm; RETURN; END IF;
    SELECT TRUE, source_epoch, signing_root INTO v_found, v_source, v_root
        FROM signed_attestations WHERE validator_id = v_id AND target_epoch = p_target;
    IF v_found THEN
        IF v_root IS NOT NULL AND p_root IS NOT NULL AND v_root = p_root THEN o_code := 1; RETURN; END IF;
        o_code := 13; o_a := v_source; o_b := p_target; o_root := v_root; RETURN;
    END IF;
    -- Each surround search walks only the narrow side of its range (targets above the new target, sources
    -- above the new source; usually empty). `+ 0` keeps the planner from walking the other index over the
    -- validator's whole history, which the cached generic plan otherwise does.
    SELECT source_epoch, target_epoch, signing_root INTO o_a, o_b, o_root FROM signed_attestations
        WHERE validator_id = v_id AND target_epoch > p_target AND source_epoch + 0 < p_source
        ORDER BY target_epoch LIMIT 1;
    IF FOUND THEN o_code := 15; RETURN; END IF;
    SELECT source_epoch, target_epoch, signing_root INTO o_a, o_b, o_root FROM signed_attestations
        WHERE validator_id = v_id AND source_epoch > p_source AND target_epoch + 0 < p_target
        ORDER BY source_epoch, target_epoch LIMIT 1;
    IF FOUND THEN o_code := 14; RETURN; END IF;
    INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
        VALUES (v_id, p_source, p_target, p_root);
    o_code := 0;
END
$$;
