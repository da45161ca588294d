#!/usr/bin/env python3
"""Prints a SigV4 presigned URL for one S3 request, so that bench/run.sh can time plain `curl`
transfers straight against the S3 server Hangar uses (the reference for the S3 ratios of SPEC §12).

    s3presign.py METHOD URL        (path-style: http://HOST:PORT/BUCKET/KEY)
    s3presign.py METHOD URL COUNT  COUNT URLs, one per line, for the keys KEY-0 to KEY-(COUNT-1)
                                   (the many small PUTs that bench/upload.lua sends, BENCH_TARGET=urls)

Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (default
us-east-1). Written with the standard library only (the query-string form of AWS Signature Version 4,
payload unsigned, as any S3 client presigns) because the bench machine has no AWS SDK, and curl's own
--aws-sigv4 signs S3 uploads wrongly in the curl Debian 12 ships."""

import datetime
import hashlib
import hmac
import os
import sys
import urllib.parse


def sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def presign(method: str, url: str, expires: int = 900) -> str:
    access = os.environ["AWS_ACCESS_KEY_ID"]
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    region = os.environ.get("AWS_REGION", "us-east-1")
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access}/{scope}",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(query.items())
    )
    path = urllib.parse.quote(parts.path, safe="/-_.~")
    canonical = "\n".join(
        [method, path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = sign(sign(sign(sign(f"AWS4{secret}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{parts.scheme}://{parts.netloc}{path}?{canonical_query}&X-Amz-Signature={signature}"


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(presign(sys.argv[1].upper(), sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[3].isdigit():
        method = sys.argv[1].upper()
        sys.stdout.writelines(
            presign(method, f"{sys.argv[2]}-{i}") + "\n" for i in range(int(sys.argv[3]))
        )
    else:
        sys.exit(__doc__)
