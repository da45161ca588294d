-- Object stores (S3) keep each blob's bytes under a key chosen before the upload, recorded here, so
-- that the streamed upload needs no copy to a content-addressed key once its hash is known. NULL:
-- the content-addressed layout (`blobs/<sha256>`) of rows from before, and of local disks. (PostgreSQL
-- 0009.)
ALTER TABLE blobs ADD COLUMN object_key TEXT;
CREATE UNIQUE INDEX blobs_object_key ON blobs(object_key) WHERE object_key IS NOT NULL;
