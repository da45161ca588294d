//! Previews of images and video posters (SPEC §9.3): decoding under pixel and memory limits, EXIF
//! orientation, resizing with `fast_image_resize`, encoding. Pure CPU work on bytes in memory (run it
//! on a blocking thread), except `poster_frame`, which asks `ffmpeg` for a video's first frame.

mod video;

pub use video::{ffmpeg_available, poster_frame};

use fast_image_resize::{ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The preview sizes a client may ask for: the longer side, in pixels.
pub const SIZES: [u32; 3] = [64, 256, 1024];

/// JPEG quality of opaque previews: small files, no visible blocking at thumbnail sizes.
const JPEG_QUALITY: u8 = 85;

/// What decoding may cost. A file over any of these gets no preview, before the pixels are
/// allocated (the dimensions are read from the header first).
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Longest side accepted.
    pub max_side: u32,
    /// Most pixels accepted (width × height).
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate.
    pub max_alloc: u64,
    /// Largest encoded file read into memory for decoding.
    pub max_input: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_side: 20_000,
            // 40 megapixels: every phone camera; RGBA at this size is 160 MB.
            max_pixels: 40_000_000,
            max_alloc: 256 * 1024 * 1024,
            max_input: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not an image of a previewed format, or bytes that do not decode.
    #[error("not a decodable image: {0}")]
    NotAnImage(String),
    /// Past a pixel or memory limit (a decompression bomb, or simply too large).
    #[error("the image is too large to preview: {0}")]
    TooLarge(String),
    /// Encoding a preview failed.
    #[error("cannot encode a preview: {0}")]
    Encode(String),
    /// `ffmpeg` is missing, failed, timed out or gave no frame.
    #[error("no video poster: {0}")]
    Video(String),
}

/// One encoded preview.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The size asked for (one of `SIZES`).
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Every size of preview of one image, and the image's own size as displayed.
#[derive(Debug, Clone)]
pub struct Previews {
    /// The original's width and height after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// One per entry of `SIZES`, in that order.
    pub previews: Vec<Preview>,
}

/// The formats previewed: told from the bytes, never from the declared type.
fn previewed(format: ImageFormat) -> bool {
    matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    )
}

/// Decodes an image (a GIF's first frame) under `limits`, with its EXIF orientation applied.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, MediaError> {
    if bytes.len() as u64 > limits.max_input {
        return Err(MediaError::TooLarge(format!(
            "{} bytes is more than the {} read for previews",
            bytes.len(),
            limits.max_input
        )));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| MediaError::NotAnImage(e.to_string()))?;
    match reader.format() {
        Some(f) if previewed(f) => {}
        _ => return Err(MediaError::NotAnImage("not PNG, JPEG, GIF or WebP".into())),
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(MediaError::TooLarge(format!(
            "{w}×{h} is more than {} pixels",
            limits.max_pixels
        )));
    }
    if w == 0 || h == 0 {
        return Err(MediaError::NotAnImage("an image without pixels".into()));
    }
    // A broken or absent EXIF block is no reason to refuse the pixels.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Limit errors are "too large"; everything else means the bytes are not an image we can read.
fn refusal(e: image::ImageError) -> MediaError {
    match e {
        image::ImageError::Limits(l) => MediaError::TooLarge(l.to_string()),
        other => MediaError::NotAnImage(other.to_string()),
    }
}

/// The size of a preview whose longer side is at most `size`: never larger than the original,
/// aspect ratio kept, never 0.
pub fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    let longer = width.max(height);
    if longer <= size {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(size) + u64::from(longer) / 2) / u64::from(longer);
        (scaled as u32).max(1)
    };
    (scale(width), scale(height))
}

/// Makes every preview of an image file: decode once, then resize step by step from the largest.
pub fn make_previews(bytes: &[u8], limits: &DecodeLimits) -> Result<Previews, MediaError> {
    previews_of(decode(bytes, limits)?)
}

/// Every preview of a decoded image.
pub fn previews_of(image: DynamicImage) -> Result<Previews, MediaError> {
    let (width, height) = (image.width(), image.height());
    let opaque = is_opaque(&image);
    // 8 bits per channel: what JPEG and the resizer's fast paths take; alpha only where it is used.
    let mut current = if opaque {
        DynamicImage::ImageRgb8(image.into_rgb8())
    } else {
        DynamicImage::ImageRgba8(image.into_rgba8())
    };
    let mut resizer = Resizer::new();
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(
        fast_image_resize::FilterType::Lanczos3,
    ));
    let mut previews = Vec::with_capacity(SIZES.len());
    for &size in SIZES.iter().rev() {
        let (w, h) = fit(width, height, size);
        if (w, h) != (current.width(), current.height()) {
            let mut smaller = DynamicImage::new(w, h, current.color());
            resizer
                .resize(&current, &mut smaller, &options)
                .map_err(|e| MediaError::Encode(e.to_string()))?;
            // The next, smaller size starts from this one: far fewer pixels to read.
            current = smaller;
        }
        previews.push(encode(&current, size, opaque)?);
    }
    previews.reverse();
    Ok(Previews {
        width,
        height,
        previews,
    })
}

/// Whether no pixel is even partly transparent.
fn is_opaque(image: &DynamicImage) -> bool {
    if !image.color().has_alpha() {
        return true;
    }
    match image {
        DynamicImage::ImageRgba8(buf) => buf.pixels().all(|p| p[3] == u8::MAX),
        DynamicImage::ImageLumaA8(buf) => buf.pixels().all(|p| p[1] == u8::MAX),
        // Wider formats are rare; keep their alpha.
        _ => false,
    }
}

/// Opaque previews are JPEG (photos stay small); those with transparency PNG.
fn encode(image: &DynamicImage, size: u32, opaque: bool) -> Result<Preview, MediaError> {
    let mut bytes = Vec::new();
    let content_type = if opaque {
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(image)
            .map_err(|e| MediaError::Encode(e.to_string()))?;
        "image/jpeg"
    } else {
        image
            .write_with_encoder(PngEncoder::new(&mut bytes))
            .map_err(|e| MediaError::Encode(e.to_string()))?;
        "image/png"
    };
    Ok(Preview {
        size,
        width: image.width(),
        height: image.height(),
        content_type,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn sizes_fit_the_longer_side_and_never_grow() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 64), (48, 64));
        assert_eq!(fit(100, 50, 1024), (100, 50));
        assert_eq!(fit(10_000, 1, 64), (64, 1));
    }

    #[test]
    fn an_opaque_image_gets_jpeg_previews_of_every_size() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(2000, 500, Rgb([200, 10, 10])));
        let set = make_previews(&png(&image), &DecodeLimits::default()).unwrap();
        assert_eq!((set.width, set.height), (2000, 500));
        let dims: Vec<_> = set
            .previews
            .iter()
            .map(|p| (p.size, p.width, p.height))
            .collect();
        assert_eq!(dims, vec![(64, 64, 16), (256, 256, 64), (1024, 1024, 256)]);
        for p in &set.previews {
            assert_eq!(p.content_type, "image/jpeg");
            let back = image::load_from_memory(&p.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (p.width, p.height));
        }
    }

    #[test]
    fn transparency_is_kept_as_png() {
        let image = DynamicImage::ImageRgba8(RgbaImage::from_pixel(300, 300, Rgba([0, 0, 0, 10])));
        let set = make_previews(&png(&image), &DecodeLimits::default()).unwrap();
        assert!(set.previews.iter().all(|p| p.content_type == "image/png"));
        assert_eq!(set.previews[2].width, 300);
    }

    #[test]
    fn limits_refuse_before_decoding() {
        let image = DynamicImage::ImageRgb8(RgbImage::new(300, 200));
        let limits = DecodeLimits {
            max_pixels: 50_000,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            make_previews(&png(&image), &limits),
            Err(MediaError::TooLarge(_))
        ));
        assert!(matches!(
            make_previews(b"plain text", &DecodeLimits::default()),
            Err(MediaError::NotAnImage(_))
        ));
    }
}
