//! Multipart bodies as Hangar reads them (multer with per-field limits): any byte soup, split into
//! chunks at arbitrary places, ends in fields or an error, never a panic or a hang.
#![no_main]
use futures_util::stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (split, body) = input;
    let cut = (split as usize).min(body.len());
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::copy_from_slice(&body[..cut])),
        Ok(bytes::Bytes::copy_from_slice(&body[cut..])),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(async move {
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new().for_field("files", u64::MAX).per_field(64 * 1024),
        );
        let mut multipart = multer::Multipart::with_constraints(stream::iter(chunks), "XyZ", constraints);
        let mut fields = 0;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            let _ = (field.name(), field.file_name(), field.content_type(), field.headers().len());
            let mut total = 0usize;
            while let Ok(Some(chunk)) = field.chunk().await {
                total += chunk.len();
            }
            assert!(total <= body.len());
            fields += 1;
            assert!(fields <= body.len() + 1);
        }
    });
});
