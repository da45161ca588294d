-- A blob's pin in one statement (one round trip instead of six: BEGIN, the lock, the row's read,
-- its insert, the pin's insert, COMMIT). Called in a transaction of its own (autocommit), so the
-- advisory lock is held until the pin commits, as `begin_blob_deletion` expects. The function is
-- VOLATILE: under READ COMMITTED, each statement in it takes a fresh snapshot, so the blob's row is
-- read after the lock is held and sees what a collector committed before letting it go.
--
-- With `p_object_key`, a blob without a row gets one (at refcount 0, which the pin protects) that
-- records the key; without, no row is made. Answers whether the blob is being deleted (then nothing
-- is pinned) and the key its row records.
CREATE FUNCTION hangar_pin_blob(p_pin TEXT, p_sha256 TEXT, p_size BIGINT, p_expires_utc BIGINT,
                                p_object_key TEXT)
RETURNS TABLE (busy BOOLEAN, object_key TEXT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r_deleting BOOLEAN;
    r_key TEXT;
    r_found BOOLEAN;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_sha256, 0));
    SELECT b.deleting, b.object_key INTO r_deleting, r_key FROM blobs b WHERE b.sha256 = p_sha256;
    r_found := FOUND;
    IF r_found AND r_deleting THEN
        RETURN QUERY SELECT TRUE, NULL::TEXT;
        RETURN;
    END IF;
    IF NOT r_found AND p_object_key IS NOT NULL THEN
        INSERT INTO blobs (sha256, size, refcount, object_key)
            VALUES (p_sha256, p_size, 0, p_object_key);
        r_key := p_object_key;
    END IF;
    INSERT INTO blob_pins (id, sha256, expires_utc) VALUES (p_pin, p_sha256, p_expires_utc);
    RETURN QUERY SELECT FALSE, r_key;
END
$$;
