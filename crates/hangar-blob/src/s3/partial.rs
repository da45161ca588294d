//! Partial (tus) uploads on S3: each chunk is an object of its own, `PREFIX/partial/<id>/<offset>`
//! (the offset in 20 digits, so that names sort by it). S3 multipart parts must be at least 5 MiB
//! but for the last, and tus chunks can be any size, so chunks are not parts: at completion they
//! are read back in order, from 0, and staged as one blob, hashed on the way (the whole-file
//! digest that completion verifies anyway). A chunk written again at the same offset replaces its
//! object, so leftovers of a refused chunk never reach the file.

use super::upload::Upload;
use super::Inner;
use crate::partial::{bad_id, missing_bytes, take_bytes, ChunkMeter};
use crate::{valid_partial_id, BlobError, ByteStream, ChunkDigest, WrittenChunk};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// A chunk object: where it starts and how long it is.
struct ChunkObject {
    offset: u64,
    size: u64,
    location: Path,
}

impl Inner {
    fn partial_dir(&self, id: &str) -> Result<Path, BlobError> {
        if !valid_partial_id(id) {
            return Err(bad_id());
        }
        Ok(self.path(&format!("partial/{id}")))
    }

    /// The partial upload's chunk objects, by offset.
    async fn chunk_objects(&self, id: &str) -> Result<Vec<ChunkObject>, BlobError> {
        let dir = self.partial_dir(id)?;
        let mut listed = self.s3.list(Some(&dir));
        let mut chunks = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| self.error(e))?;
            let Some(offset) = meta.location.filename().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            chunks.push(ChunkObject {
                offset,
                size: meta.size,
                location: meta.location,
            });
        }
        chunks.sort_by_key(|c| c.offset);
        Ok(chunks)
    }
}

/// The chunks that follow each other from byte 0, and the length they make.
fn chain(chunks: &[ChunkObject]) -> (Vec<&ChunkObject>, u64) {
    let mut end = 0;
    let mut used = Vec::new();
    for c in chunks {
        if c.offset == end && c.size > 0 {
            end += c.size;
            used.push(c);
        } else if c.offset > end {
            break;
        }
    }
    (used, end)
}

pub(super) async fn write(
    inner: &Inner,
    id: &str,
    offset: u64,
    mut body: ByteStream,
    max_bytes: u64,
    digest: Option<ChunkDigest>,
) -> Result<WrittenChunk, BlobError> {
    let chunks = inner.chunk_objects(id).await?;
    let (used, held) = chain(&chunks);
    let boundary = offset == 0 || used.iter().any(|c| c.offset + c.size == offset);
    if held < offset || !boundary {
        return Err(missing_bytes(held, offset));
    }
    // Objects from this offset on are leftovers the database never counted.
    for stale in chunks.iter().filter(|c| c.offset >= offset) {
        match inner.s3.delete(&stale.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(inner.error(e)),
        }
    }
    let location = inner.path(&format!("partial/{id}/{offset:020}"));
    let mut upload = Upload::new(inner, location);
    let mut meter = ChunkMeter::new(max_bytes, digest);
    while let Some(chunk) = body.next().await {
        let pushed = match chunk {
            Err(e) => Err(BlobError::Interrupted(e)),
            Ok(chunk) => match meter.take(&chunk) {
                Ok(()) => upload.push(chunk).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = pushed {
            upload.abort().await;
            return Err(e);
        }
    }
    if meter.written == 0 {
        upload.abort().await;
    } else {
        upload.finish().await?;
    }
    Ok(meter.finish())
}

pub(super) async fn len(inner: &Inner, id: &str) -> Result<Option<u64>, BlobError> {
    let chunks = inner.chunk_objects(id).await?;
    if chunks.is_empty() {
        return Ok(None);
    }
    Ok(Some(chain(&chunks).1))
}

/// The first `len` bytes of the partial upload, read chunk after chunk.
pub(super) async fn read(inner: &Inner, id: &str, len: u64) -> Result<ByteStream, BlobError> {
    let chunks = inner.chunk_objects(id).await?;
    let (used, held) = chain(&chunks);
    if held < len {
        return Err(missing_bytes(held, len));
    }
    let locations: Vec<Path> = used.into_iter().map(|c| c.location.clone()).collect();
    let s3 = inner.s3.clone();
    let body = futures_util::stream::iter(locations)
        .then(move |location| {
            let s3 = s3.clone();
            async move {
                let got = s3.get(&location).await.map_err(std::io::Error::from)?;
                Ok::<_, std::io::Error>(got.into_stream().map_err(std::io::Error::from))
            }
        })
        .try_flatten()
        .boxed();
    Ok(take_bytes(body, len))
}

pub(super) async fn abort(inner: &Inner, id: &str) -> Result<(), BlobError> {
    for chunk in inner.chunk_objects(id).await? {
        match inner.s3.delete(&chunk.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(inner.error(e)),
        }
    }
    Ok(())
}
