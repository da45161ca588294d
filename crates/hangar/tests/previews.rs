//! Previews (SPEC §9.3) over real HTTP, with real images made here with the `image` crate: PNG,
//! JPEG with an EXIF orientation, GIF (first frame), WebP; the background job in every upload mode,
//! on-demand previews, image contexts that answer with the preview made, sizes and errors, access
//! rules and public links, blobs that go with their attachment, and a decompression bomb that
//! leaves the (spawned) server healthy and small.

mod common;

use common::*;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use reqwest::Response;
use serde_json::Value;
use std::io::Cursor;

// ---------------------------------------------------------------------------------------------------
// Images made for the tests
// ---------------------------------------------------------------------------------------------------

const RED: Rgb<u8> = Rgb([220, 20, 20]);
const BLUE: Rgb<u8> = Rgb([20, 20, 220]);
const GREEN: Rgb<u8> = Rgb([20, 200, 20]);

/// `width`×`height`, its left half red and right half blue.
fn halves(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, _| if x < width / 2 { RED } else { BLUE })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn png(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(halves(width, height)),
        ImageFormat::Png,
    )
}

/// A JPEG whose EXIF block says "rotate 90° clockwise to display" (orientation 6): an APP1 segment
/// with a big-endian TIFF header and one IFD entry, written by hand after the encoder's own header.
fn jpeg_rotated(width: u32, height: u32) -> Vec<u8> {
    let plain = encode(
        &DynamicImage::ImageRgb8(halves(width, height)),
        ImageFormat::Jpeg,
    );
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a"); // big-endian TIFF
    tiff.extend_from_slice(&8u32.to_be_bytes()); // the first IFD follows the header
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry:
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&[0, 6, 0, 0]); // 6, left-aligned in the 4-byte field
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    // After SOI, and after the JFIF APP0 segment when there is one.
    let mut at = 2;
    if plain[2..4] == [0xFF, 0xE0] {
        at = 4 + usize::from(u16::from_be_bytes([plain[4], plain[5]]));
    }
    let mut out = plain[..at].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[at..]);
    out
}

/// A two-frame GIF: green, then red.
fn gif(width: u32, height: u32) -> Vec<u8> {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let frame = |c: Rgb<u8>| {
        let rgba = RgbaImage::from_pixel(width, height, Rgba([c[0], c[1], c[2], 255]));
        Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(100, 1))
    };
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.encode_frames([frame(GREEN), frame(RED)]).unwrap();
    }
    out
}

fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgb8(halves(width, height)),
        ImageFormat::WebP,
    )
}

/// A half-transparent PNG.
fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    encode(
        &DynamicImage::ImageRgba8(RgbaImage::from_pixel(width, height, Rgba([0, 0, 0, 128]))),
        ImageFormat::Png,
    )
}

/// A real, small PNG whose header declares 50,000 × 50,000 pixels (10 GB of RGBA once decoded):
/// a valid IHDR, a short zlib stream (one stored block of zeros) as IDAT, IEND, every CRC right.
fn decompression_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8 bits, RGBA, deflate, adaptive, no interlace
    let zeros = [0u8; 1024];
    let mut zlib = vec![0x78, 0x01, 0x01]; // zlib header; final stored block
    zlib.extend_from_slice(&(zeros.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(zeros.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&zeros);
    let (mut a, mut b) = (1u32, 0u32); // Adler-32
    for byte in zeros {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

async fn metadata(user: &User, id: i64) -> Value {
    let r = user
        .get(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn preview(user: &User, id: i64, size: Option<&str>) -> Response {
    let mut request = user.get(&format!("/api/v1/attachments/{id}/preview"));
    if let Some(size) = size {
        request = request.query(&[("size", size)]);
    }
    request.send().await.unwrap()
}

/// A 200 preview of this content type: the decoded image.
async fn decoded(r: Response, content_type: &str) -> DynamicImage {
    assert_eq!(r.status(), 200, "{}", r.url());
    assert_eq!(r.headers()["content-type"], content_type);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(r.headers().contains_key("etag"));
    let bytes = r.bytes().await.unwrap();
    image::load_from_memory(&bytes).expect("the preview decodes")
}

fn dims(image: &DynamicImage) -> (u32, u32) {
    (image.width(), image.height())
}

/// Whether a pixel is mostly of this colour.
fn near(image: &DynamicImage, x: u32, y: u32, colour: Rgb<u8>) -> bool {
    let p = image.to_rgb8().get_pixel(x, y).0;
    p.iter()
        .zip(colour.0)
        .all(|(got, want)| got.abs_diff(want) < 60)
}

async fn upload_with_context(user: &User, name: &str, ctype: &str, bytes: &[u8], ctx: &str) -> i64 {
    let r = user
        .post("/uploads")
        .query(&[("name", name), ("spaceMediaType", ctx)])
        .header("content-type", ctype)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_background_job_previews_png_jpeg_gif_and_webp() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let png_id = alice.upload("wide.png", "image/png", &png(300, 200)).await;
    let jpeg_id = alice
        .upload("photo.jpg", "image/jpeg", &jpeg_rotated(120, 80))
        .await;
    let gif_id = alice.upload("anim.gif", "image/gif", &gif(90, 30)).await;
    let webp_id = alice.upload("pic.webp", "image/webp", &webp(40, 100)).await;
    let alpha_id = alice
        .upload("ghost.png", "image/png", &png_with_alpha(500, 500))
        .await;

    // Before the job: no preview yet, and no size in the metadata.
    let before = metadata(&alice, png_id).await;
    assert_eq!(before["hasThumbnail"], false);
    assert!(before.get("width").is_none(), "{before}");
    assert!(app.run_jobs().await >= 5);

    let m = metadata(&alice, png_id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 300.into(), 200.into())
    );
    let p = decoded(preview(&alice, png_id, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (64, 43));
    let p = decoded(preview(&alice, png_id, None).await, "image/jpeg").await;
    assert_eq!(dims(&p), (256, 171), "256 by default");
    // Never larger than the original.
    let p = decoded(preview(&alice, png_id, Some("1024")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (300, 200));
    assert!(near(&p, 10, 100, RED) && near(&p, 290, 100, BLUE));

    // Stored 120×80, displayed 80×120: rotated a quarter turn clockwise, so what was the left half
    // (red) is now the top.
    let m = metadata(&alice, jpeg_id).await;
    assert_eq!(
        (m["width"].clone(), m["height"].clone()),
        (80.into(), 120.into()),
        "{m}"
    );
    let p = decoded(preview(&alice, jpeg_id, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (43, 64));
    assert!(near(&p, 21, 5, RED), "top is red");
    assert!(near(&p, 21, 58, BLUE), "bottom is blue");

    // A GIF's first frame.
    let m = metadata(&alice, gif_id).await;
    assert_eq!(
        (m["width"].clone(), m["height"].clone()),
        (90.into(), 30.into())
    );
    let p = decoded(preview(&alice, gif_id, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (64, 21));
    assert!(near(&p, 32, 10, GREEN));

    let m = metadata(&alice, webp_id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 40.into(), 100.into())
    );
    let p = decoded(preview(&alice, webp_id, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (26, 64));

    // Transparency is kept: PNG.
    let p = decoded(preview(&alice, alpha_id, Some("256")).await, "image/png").await;
    assert_eq!(dims(&p), (256, 256));
    assert_eq!(p.to_rgba8().get_pixel(128, 128)[3], 128);
}

#[tokio::test]
async fn every_upload_mode_queues_the_job() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let channel = alice.channel("pics", &[]).await;
    let message = alice.message(channel, "look").await;
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(png(64, 32))
            .file_name("form.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = alice
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let multipart_id = body["attachments"][0]["attachmentId"].as_i64().unwrap();

    // tus, creation with upload: the whole file in the creating request.
    let bytes = png(48, 96);
    let meta = format!("filename {},filetype {}", b64("tus.png"), b64("image/png"));
    let r = alice
        .post("/api/v1/tus")
        .header("tus-resumable", "1.0.0")
        .header("upload-length", bytes.len().to_string())
        .header("upload-metadata", meta)
        .header("content-type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tus_id: i64 = r.headers()["hangar-attachment-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        metadata(&alice, tus_id).await["attachmentState"],
        "ReadyForDownloadFromServerToClient"
    );

    app.run_jobs().await;
    let m = metadata(&alice, multipart_id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 64.into(), 32.into())
    );
    let m = metadata(&alice, tus_id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 48.into(), 96.into())
    );
    // Message listings carry the same metadata.
    let r = alice
        .get(&format!("/api/v1/channels/{channel}/messages"))
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(
        listed["data"][0]["attachments"][0]["hasThumbnail"], true,
        "{listed}"
    );
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn previews_are_made_on_demand_and_image_contexts_wait_for_them() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    // No job has run: the request makes it.
    let id = alice.upload("a.png", "image/png", &png(640, 480)).await;
    let p = decoded(preview(&alice, id, Some("256")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (256, 192));
    let m = metadata(&alice, id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 640.into(), 480.into())
    );
    // The job that follows finds them made.
    app.run_jobs().await;
    let again = decoded(preview(&alice, id, Some("256")).await, "image/jpeg").await;
    assert_eq!(dims(&again), (256, 192));

    // Space-style image contexts: made before the upload answers.
    for ctx in ["chat-image-attachment", "issue-image-attachment"] {
        let id =
            upload_with_context(&alice, "b.jpg", "image/jpeg", &jpeg_rotated(200, 100), ctx).await;
        let m = metadata(&alice, id).await;
        assert_eq!(m["hasThumbnail"], true, "{ctx}: {m}");
        assert_eq!(
            (m["width"].clone(), m["height"].clone()),
            (100.into(), 200.into())
        );
    }
}

#[tokio::test]
async fn sizes_errors_and_access_are_those_of_the_attachment() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let id = alice.upload("a.png", "image/png", &png(100, 100)).await;
    for bad in ["128", "0", "abc", "-64"] {
        expect_error(preview(&alice, id, Some(bad)).await, 400, "bad-size").await;
    }
    let text = alice
        .upload("notes.txt", "text/plain", b"not an image")
        .await;
    expect_error(preview(&alice, text, None).await, 404, "no-preview").await;
    // Bytes that claim to be an image but are not one.
    let fake = alice
        .upload("fake.png", "image/png", b"\x89PNG\r\n\x1a\nbroken")
        .await;
    expect_error(preview(&alice, fake, None).await, 404, "no-preview").await;
    app.run_jobs().await;
    assert_eq!(metadata(&alice, fake).await["hasThumbnail"], false);
    expect_error(preview(&alice, fake, None).await, 404, "no-preview").await;

    // Another member sees nothing; no credentials at all is a 401.
    expect_error(preview(&bob, id, None).await, 404, "not-found").await;
    let anonymous = reqwest::Client::new()
        .get(app.url(&format!("/api/v1/attachments/{id}/preview")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The owner: private caching, and the ETag answers 304.
    let r = preview(&alice, id, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-cache");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = alice
        .get(&format!("/api/v1/attachments/{id}/preview"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn a_public_link_token_opens_the_preview() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let channel = alice.channel("pics", &[]).await;
    let message = alice.message(channel, "look").await;
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(png(300, 300))
            .file_name("p.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = alice
        .post(&format!("/api/v1/messages/{message}/attachments"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let id = body["attachments"][0]["attachmentId"].as_i64().unwrap();
    let r = alice
        .get(&format!(
            "/api/http/uploads/chat/public-url/channel:id:{channel}/id:{message}/{id}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let url: String = r.json().await.unwrap();
    let token = url.split("?k=").nth(1).unwrap().to_string();

    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(app.url(&format!(
            "/api/v1/attachments/{id}/preview?size=64&k={token}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, no-cache");
    let p = decoded(r, "image/jpeg").await;
    assert_eq!(dims(&p), (64, 64));
    let r = anonymous
        .get(app.url(&format!("/api/v1/attachments/{id}/preview?k=0123{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Revoked: the token stops working here too.
    let r = alice
        .delete(&format!("/api/v1/attachments/{id}/public-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = anonymous
        .get(app.url(&format!("/api/v1/attachments/{id}/preview?k={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn previews_are_blobs_that_go_with_their_attachment() {
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let original = png(400, 300);
    let id = alice.upload("a.png", "image/png", &original).await;
    // The same bytes twice: one source, one set of previews.
    let twin = alice.upload("b.png", "image/png", &original).await;
    app.run_jobs().await;
    let mut previews = Vec::new();
    for size in ["64", "256", "1024"] {
        let r = preview(&alice, id, Some(size)).await;
        let etag = r.headers()["etag"]
            .to_str()
            .unwrap()
            .trim_matches('"')
            .to_string();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            etag,
            "the ETag is the preview's SHA-256"
        );
        assert_eq!(
            app.blob_bytes(&etag).await,
            bytes.to_vec(),
            "stored as a blob"
        );
        previews.push(etag);
    }
    let name = |sha: &str| std::path::PathBuf::from(sha);
    let stored = app.blob_files().await;
    let stored: Vec<String> = stored
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    for p in &previews {
        assert!(stored.contains(p), "preview {p} stored in {stored:?}");
    }
    assert!(stored.contains(&sha256_hex(&original)));
    assert_eq!(metadata(&alice, twin).await["hasThumbnail"], true);

    // Deleting one attachment keeps everything (the twin still refers to the bytes)…
    let r = alice
        .delete(&format!("/api/v1/attachments/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let left: Vec<String> = app
        .blob_files()
        .await
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(left, stored);
    assert_eq!(
        decoded(preview(&alice, twin, Some("64")).await, "image/jpeg")
            .await
            .width(),
        64
    );
    // …deleting the last one lets the collector take the source and its previews.
    let r = alice
        .delete(&format!("/api/v1/attachments/{twin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let left = app.blob_files().await;
    for p in previews.iter().chain([&sha256_hex(&original)]) {
        assert!(!left.contains(&name(p)), "{p} collected, left {left:?}");
    }
    assert!(left.is_empty(), "{left:?}");
}

/// A memory figure of the process in KiB: `VmRSS:` (resident now) or `VmHWM:` (the peak).
fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("the field is in /proc/PID/status")
}

#[tokio::test]
async fn a_decompression_bomb_gets_no_preview_and_breaks_nothing() {
    // Argon2's 19 MiB buffers (logins, member creation) are freed before the bomb arrives, but an
    // allocator may keep them: glibc raises its mmap threshold after the first large free and
    // keeps them in its arenas; mimalloc gives them back a second after the free, and only when it
    // next allocates, and its transparent huge pages round what a thread touches up to 2 MiB (the
    // server's build turns them off; the variable does it on hosts where they are always on).
    // Either takes a debug server near or past 100 MiB before the bomb, so these settings make
    // both give freed memory back at once and the figures below are about previews.
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MALLOC_MMAP_THRESHOLD_", "1048576"),
        ("MIMALLOC_PURGE_DELAY", "0"),
        ("MIMALLOC_ALLOW_THP", "0"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let server = Server::start_node(dir.path().join("data"), &[], &env);
    let alice = server.member("alice").await;
    let bomb = decompression_bomb();
    // From here on the peak counts only what the bomb and the previews after it cost (writing 5 to
    // clear_refs resets VmHWM to the current RSS).
    let before = rss_kib(server.pid(), "VmRSS:");
    std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5").unwrap();
    assert!(bomb.len() < 2048, "a small file: {} bytes", bomb.len());
    // The `image` crate reads its header like any PNG's.
    let header = image::ImageReader::new(Cursor::new(&bomb))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap();
    assert_eq!(header, (50_000, 50_000));

    // On demand, through an image context (made before the answer), and by the job.
    let id = alice.upload("bomb.png", "image/png", &bomb).await;
    expect_error(preview(&alice, id, None).await, 404, "no-preview").await;
    let ctx = upload_with_context(
        &alice,
        "bomb2.png",
        "image/png",
        &bomb,
        "chat-image-attachment",
    )
    .await;
    assert_eq!(metadata(&alice, ctx).await["hasThumbnail"], false);
    expect_error(preview(&alice, ctx, Some("1024")).await, 404, "no-preview").await;

    // Still healthy, and still making previews of real images.
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ok = alice.upload("fine.png", "image/png", &png(200, 100)).await;
    let p = decoded(preview(&alice, ok, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (64, 32));
    let peak = rss_kib(server.pid(), "VmHWM:");
    assert!(
        peak < 100 * 1024,
        "peak RSS {peak} KiB ({before} KiB before the bomb)"
    );
    assert!(
        peak.saturating_sub(before) < 16 * 1024,
        "the bomb and a small preview took {} KiB",
        peak - before
    );
}

/// A one-second 160×90 red MP4 made by ffmpeg itself (MPEG-4 part 2, built into every ffmpeg).
fn red_video(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("red.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("color=c=0xdc1414:s=160x90:d=1:r=10")
        .args(["-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p", "-y"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn videos_get_a_poster_where_ffmpeg_is_installed() {
    let on_path = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !on_path {
        // scripts/test.sh installs it (scripts/ffmpeg.sh); a machine without it skips this test.
        println!("SKIPPED: ffmpeg is not installed, so videos have no poster to test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let video = red_video(dir.path());
    let app = TestApp::start().await;
    let alice = app.member("alice").await;
    let id = alice.upload("clip.mp4", "video/mp4", &video).await;
    assert!(app.run_jobs().await >= 1);
    let m = metadata(&alice, id).await;
    assert_eq!(
        (
            m["hasThumbnail"].clone(),
            m["width"].clone(),
            m["height"].clone()
        ),
        (true.into(), 160.into(), 90.into()),
        "{m}"
    );
    let p = decoded(preview(&alice, id, Some("64")).await, "image/jpeg").await;
    assert_eq!(dims(&p), (64, 36));
    assert!(near(&p, 32, 18, RED), "the poster is the first (red) frame");
    // Bytes that only claim to be a video: no poster, no failure.
    let fake = alice.upload("fake.mp4", "video/mp4", b"not a video").await;
    app.run_jobs().await;
    expect_error(preview(&alice, fake, None).await, 404, "no-preview").await;
}
