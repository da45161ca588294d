-- The pins of several uploads in one statement (the batches of `postgres/batch.rs`): each exactly
-- as `hangar_pin_blob` makes it, taken in the order of their advisory locks' keys so that two
-- batches running at once never wait for each other in a circle. Answers each pin's position in
-- the arrays (from 1) with `hangar_pin_blob`'s answer for it.
CREATE FUNCTION hangar_pin_blobs(p_pins TEXT[], p_sha256 TEXT[], p_sizes BIGINT[],
                                 p_expires_utc BIGINT[], p_object_keys TEXT[])
RETURNS TABLE (ord INT, busy BOOLEAN, object_key TEXT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k INT;
BEGIN
    FOR k IN SELECT u.o FROM unnest(p_sha256) WITH ORDINALITY AS u(s, o)
             ORDER BY hashtextextended(u.s, 0), u.o LOOP
        RETURN QUERY SELECT k, p.busy, p.object_key
            FROM hangar_pin_blob(p_pins[k], p_sha256[k], p_sizes[k], p_expires_utc[k],
                                 p_object_keys[k]) AS p;
    END LOOP;
END
$$;
