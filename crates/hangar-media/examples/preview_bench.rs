//! Previews per second for a 12-megapixel JPEG (4000 × 3000): decode, EXIF orientation, resize to
//! 1024, 256 and 64, encode, as the `make-previews` job does. Run by `bench/previews.sh`:
//! `cargo run --release -p hangar-media --example preview_bench [ROUNDS]`.

use hangar_media::{make_previews, DecodeLimits};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use std::io::Cursor;
use std::time::Instant;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    // A photo-like picture: smooth gradients with some noise, so the JPEG has a realistic size.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let photo = RgbImage::from_fn(4000, 3000, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let noise = (seed % 24) as u8;
        Rgb([
            ((x * 255 / 4000) as u8).saturating_add(noise),
            ((y * 255 / 3000) as u8).saturating_add(noise),
            (((x + y) * 255 / 7000) as u8).saturating_add(noise),
        ])
    });
    let mut jpeg = Vec::new();
    DynamicImage::ImageRgb8(photo)
        .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .expect("encode the test photo");
    let limits = DecodeLimits::default();
    let first = make_previews(&jpeg, &limits).expect("the photo previews");
    let sizes: Vec<String> = first
        .previews
        .iter()
        .map(|p| format!("{}x{} {} B", p.width, p.height, p.bytes.len()))
        .collect();
    println!(
        "source: {}x{} JPEG, {} bytes; previews: {}",
        first.width,
        first.height,
        jpeg.len(),
        sizes.join(", ")
    );
    // One thread: the cost of one preview set.
    let started = Instant::now();
    for _ in 0..rounds {
        make_previews(&jpeg, &limits).expect("the photo previews");
    }
    let one = rounds as f64 / started.elapsed().as_secs_f64();
    println!(
        "1 thread: {rounds} sets in {:.2} s, {one:.2} images/s (each decoded once, previewed at 3 sizes)",
        started.elapsed().as_secs_f64()
    );
    // As many threads as cores: what a node's preview semaphore allows at most.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..rounds {
                    make_previews(&jpeg, &limits).expect("the photo previews");
                }
            });
        }
    });
    let all = (rounds * threads) as f64 / started.elapsed().as_secs_f64();
    println!(
        "{threads} threads: {} sets in {:.2} s, {all:.2} images/s",
        rounds * threads,
        started.elapsed().as_secs_f64()
    );
}
