//! Data URLs: decoding never panics, the media type is a valid header value, and base64 data
//! round-trips.
#![no_main]
use hangar_core::data_url::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8])| {
    let (text, bytes) = input;
    if let Ok(d) = decode(text) {
        assert!(d.content_type.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }
    let encoded = base64_encode(bytes);
    let d = decode(&format!("data:application/octet-stream;base64,{encoded}")).expect("valid base64 decodes");
    assert_eq!(d.bytes, bytes);
});

/// Standard base64 with padding, written out so the target checks the decoder against a second,
/// independent implementation.
fn base64_encode(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
