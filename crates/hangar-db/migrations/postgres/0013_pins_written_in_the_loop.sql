-- The batch pin (`hangar_pin_blobs`) makes each pin in its own loop instead of calling
-- `hangar_pin_blob` once per upload: the same steps in the same order (the advisory lock, the
-- blob's row, the object's row for a blob stored under a key of its own, the pin), without a
-- nested function call and its result set per upload, which cost PostgreSQL about 20 µs per
-- upload (docs/performance.md). `hangar_pin_blob` stays for pins made one at a time.
CREATE OR REPLACE FUNCTION hangar_pin_blobs(p_pins TEXT[], p_sha256 TEXT[], p_sizes BIGINT[],
                                            p_expires_utc BIGINT[], p_object_keys TEXT[])
RETURNS TABLE (ord INT, busy BOOLEAN, object_key TEXT)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    k INT;
    r_deleting BOOLEAN;
    r_key TEXT;
BEGIN
    FOR k IN SELECT u.o FROM unnest(p_sha256) WITH ORDINALITY AS u(s, o)
             ORDER BY hashtextextended(u.s, 0), u.o LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(p_sha256[k], 0));
        SELECT b.deleting, b.object_key INTO r_deleting, r_key
            FROM blobs b WHERE b.sha256 = p_sha256[k];
        ord := k;
        IF FOUND AND r_deleting THEN
            busy := TRUE;
            object_key := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF NOT FOUND AND p_object_keys[k] IS NOT NULL THEN
            INSERT INTO blobs (sha256, size, refcount, object_key)
                VALUES (p_sha256[k], p_sizes[k], 0, p_object_keys[k]);
            r_key := p_object_keys[k];
        END IF;
        INSERT INTO blob_pins (id, sha256, expires_utc)
            VALUES (p_pins[k], p_sha256[k], p_expires_utc[k]);
        busy := FALSE;
        object_key := r_key;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Only the once-a-minute chore that removes expired pins read pins by expiry; it reads the table,
-- which holds the few pins of uploads in flight. Each upload's pin no longer writes this index.
DROP INDEX blob_pins_expiry;
