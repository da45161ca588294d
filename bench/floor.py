#!/usr/bin/env python3
"""What this machine's disk allows for small durable writes, without HTTP or Hangar's code: the
floor under the 4 KiB upload figure.

  python3 bench/floor.py pack   DIR [BATCH] [SECONDS]   # as Hangar's placer stores small bodies
  python3 bench/floor.py files  DIR [BATCH] [SECONDS]   # as it stored them before packs, a file each
  python3 bench/floor.py sqlite DIR [BATCH] [SECONDS]   # the same bodies as rows of one SQLite table
  python3 bench/floor.py append DIR [BATCH] [SECONDS]   # the same bodies appended to one file

`pack`: batches of BATCH 4 KiB bodies with random contents, each batch written into one temporary
(each body at a multiple of 4 KiB), flushed with fdatasync, renamed into a directory of packs, and
that directory flushed (SPEC §10's order with the pack as the file, as
hangar-blob/src/local/placing.rs does it for bodies of at most 64 KiB). `files`: batches of BATCH
4 KiB files with random contents, each batch written to temporaries, flushed with one syncfs,
renamed into 256 shard directories by hash, and flushed again (SPEC §10's order, a file per body, as
Hangar stores larger files). `sqlite`: BATCH rows (SHA-256 key, 4 KiB body) per
transaction in WAL mode with synchronous=FULL, one fsync per commit. `append`: each batch appended to
one segment file with one write and one fdatasync (a log of small bodies: no file per body). One process, one thread: prints
the rate and the CPU time per file (user + system, the kernel's share apart). DIR must be on the
disk under test and is left for the caller to remove.
"""

import ctypes
import hashlib
import os
import resource
import sqlite3
import sys
import time

BODY = 4096


def files(root, batch, seconds):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    os.makedirs(f"{root}/tmp", exist_ok=True)
    for i in range(256):
        os.makedirs(f"{root}/{i:02x}", exist_ok=True)
    fs = os.open(root, os.O_RDONLY)
    done = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        moves = []
        for _ in range(batch):
            body = os.urandom(BODY)
            name = hashlib.sha256(body).hexdigest()
            temp = f"{root}/tmp/{name}.part"
            with open(temp, "wb") as f:
                f.write(body)
            moves.append((temp, f"{root}/{name[:2]}/{name}"))
        if libc.syncfs(fs) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
        for temp, final in moves:
            os.rename(temp, final)
        if libc.syncfs(fs) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
        done += batch
    os.close(fs)
    return done, time.monotonic() - start


def pack(root, batch, seconds):
    os.makedirs(f"{root}/tmp", exist_ok=True)
    os.makedirs(f"{root}/packs", exist_ok=True)
    packs = os.open(f"{root}/packs", os.O_RDONLY)
    done = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        bodies = [os.urandom(BODY) for _ in range(batch)]
        for body in bodies:
            hashlib.sha256(body).digest()
        name = os.urandom(16).hex()
        temp = f"{root}/tmp/{name}.pack"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        # A header block, then each body in a block of its own.
        os.pwrite(fd, b"\0" * 16, 0)
        for at, body in enumerate(bodies, start=1):
            os.pwrite(fd, body, at * 4096)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(temp, f"{root}/packs/{name}")
        os.fsync(packs)
        done += batch
    os.close(packs)
    return done, time.monotonic() - start


def rows(root, batch, seconds):
    db = sqlite3.connect(f"{root}/floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS bodies (sha256 TEXT PRIMARY KEY, body BLOB) WITHOUT ROWID")
    done = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        db.execute("BEGIN")
        for _ in range(batch):
            body = os.urandom(BODY)
            db.execute("INSERT INTO bodies VALUES (?, ?)", (hashlib.sha256(body).hexdigest(), body))
        db.execute("COMMIT")
        done += batch
    db.close()
    return done, time.monotonic() - start


def append(root, batch, seconds):
    segment = os.open(f"{root}/segment", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    done = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        bodies = [os.urandom(BODY) for _ in range(batch)]
        for body in bodies:
            hashlib.sha256(body).digest()
        os.write(segment, b"".join(bodies))
        os.fdatasync(segment)
        done += batch
    os.close(segment)
    return done, time.monotonic() - start


def main():
    modes = {"pack": pack, "files": files, "sqlite": rows, "append": append}
    if len(sys.argv) < 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    mode, root = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    os.makedirs(root, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    done, elapsed = modes[mode](root, batch, seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    print(
        f"{mode}: {done / elapsed:.0f}/s in batches of {batch}, "
        f"{(user + system) / done * 1e6:.0f} us of CPU each ({system / done * 1e6:.0f} in the kernel)"
    )


if __name__ == "__main__":
    main()
