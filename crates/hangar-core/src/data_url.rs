//! RFC 2397 data URLs given as upload sources: `data:[<media type>][;base64],<data>`, with the data
//! base64 or percent-encoded. Parsing is the `data-url` crate's (the WHATWG algorithm browsers use);
//! this module only states what Hangar takes from it.

/// The bytes and the media type of a data URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataUrl {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataUrlError {
    #[error("malformed data URL: it must be data:[type][;base64],data")]
    Malformed,
    #[error("the data URL's base64 is invalid")]
    BadBase64,
}

pub fn decode(s: &str) -> Result<DataUrl, DataUrlError> {
    let url = data_url::DataUrl::process(s).map_err(|_| DataUrlError::Malformed)?;
    let (bytes, _fragment) = url.decode_to_vec().map_err(|_| DataUrlError::BadBase64)?;
    let mime = url.mime_type();
    let content_type = crate::disposition::normalize_content_type(Some(&format!(
        "{}/{}",
        mime.type_, mime.subtype
    )));
    Ok(DataUrl {
        bytes,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_percent_encoded_forms() {
        let d = decode("data:text/plain;base64,aGVsbG8=").unwrap();
        assert_eq!(
            (d.bytes.as_slice(), d.content_type.as_str()),
            (&b"hello"[..], "text/plain")
        );
        let d = decode("data:,hello%20world").unwrap();
        assert_eq!(d.bytes, b"hello world");
        assert_eq!(d.content_type, "text/plain");
        let d = decode("data:image/png;base64,iVBORw0K").unwrap();
        assert_eq!(d.content_type, "image/png");
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert_eq!(decode("data:text/plain"), Err(DataUrlError::Malformed));
        assert_eq!(decode("http://x/"), Err(DataUrlError::Malformed));
        assert_eq!(decode("data:;base64,@@@"), Err(DataUrlError::BadBase64));
    }
}
