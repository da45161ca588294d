"""schemathesis hooks for scripts/api-check.sh: tus chunks are plain bytes like application/octet-stream."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
