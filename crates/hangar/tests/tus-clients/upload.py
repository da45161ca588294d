"""Uploads a file to Hangar with tuspy in chunks, stops half-way as if interrupted, then resumes it with a
new uploader that asks the server for the offset. Prints the upload's URL. Used by tests/tus.rs."""

import sys

from tusclient import client

endpoint, token, path, name = sys.argv[1:5]
CHUNK = 256 * 1024

tus = client.TusClient(endpoint, headers={"Authorization": "Bearer " + token})
first = tus.uploader(
    file_path=path,
    chunk_size=CHUNK,
    metadata={"filename": name, "filetype": "application/octet-stream"},
    upload_checksum=True,
)
size = first.get_file_size()
first.upload(stop_at=size // 2)
if not 0 < first.offset < size:
    sys.exit(f"the first half did not stop half-way: offset {first.offset} of {size}")

# A new uploader, as a new process would make it: it resumes where the server says.
second = tus.uploader(file_path=path, url=first.url, chunk_size=CHUNK, upload_checksum=True)
if second.offset != first.offset:
    sys.exit(f"the server says offset {second.offset}, the client sent {first.offset}")
second.upload()
if second.offset != size:
    sys.exit(f"the upload ended at {second.offset} of {size}")
print(f"resumed at {first.offset}", file=sys.stderr)
print(first.url)
