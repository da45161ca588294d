//! Choosing the bytes a `Range` header asks for (RFC 9110 §14). Written here rather than taken from a
//! crate because the edge cases matter and the ones available differ from the RFC on them: a suffix
//! longer than the file selects the whole file, and an invalid range (such as `bytes=5-2`) is ignored
//! rather than refused.

/// What to send for a `Range` header against a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeChoice {
    /// The whole representation (no range, an invalid one, or several: multipart answers are optional).
    Whole,
    /// One range, both ends inclusive.
    Part { first: u64, last: u64 },
    /// A valid range that selects nothing: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value.
pub fn choose(header: &str, size: u64) -> RangeChoice {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeChoice::Whole; // another unit: ignored
    };
    let specs: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [single] = specs.as_slice() else {
        return RangeChoice::Whole;
    };
    let Some((first, last)) = single.split_once('-') else {
        return RangeChoice::Whole;
    };
    // Digits that overflow 64 bits name a position past any file: they saturate.
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().unwrap_or(u64::MAX))
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => RangeChoice::Whole,
            Some(0) => RangeChoice::Unsatisfiable,
            Some(_) if size == 0 => RangeChoice::Unsatisfiable,
            Some(n) => RangeChoice::Part {
                first: size - n.min(size),
                last: size - 1,
            },
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return RangeChoice::Whole;
            };
            let last = if last.is_empty() {
                None
            } else {
                match number(last) {
                    Some(l) if l >= first => Some(l),
                    _ => return RangeChoice::Whole, // invalid: first > last, or not a number
                }
            };
            if first >= size {
                return RangeChoice::Unsatisfiable;
            }
            let last = last.map_or(size - 1, |l| l.min(size - 1));
            RangeChoice::Part { first, last }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RangeChoice::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(choose("bytes=0-4", 10), Part { first: 0, last: 4 });
        assert_eq!(choose("bytes=5-", 10), Part { first: 5, last: 9 });
        assert_eq!(choose("bytes=8-100", 10), Part { first: 8, last: 9 });
        assert_eq!(choose("bytes=-3", 10), Part { first: 7, last: 9 });
        assert_eq!(choose("bytes=-30", 10), Part { first: 0, last: 9 });
        assert_eq!(choose(" bytes=2-2 ", 10), Part { first: 2, last: 2 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(choose("bytes=10-", 10), Unsatisfiable);
        assert_eq!(choose("bytes=20-30", 10), Unsatisfiable);
        assert_eq!(choose("bytes=-0", 10), Unsatisfiable);
        assert_eq!(choose("bytes=0-", 0), Unsatisfiable);
        assert_eq!(choose("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn positions_past_64_bits_saturate() {
        assert_eq!(choose("bytes=99999999999999999999999-", 10), Unsatisfiable);
        assert_eq!(
            choose("bytes=0-99999999999999999999999", 10),
            Part { first: 0, last: 9 }
        );
        assert_eq!(
            choose("bytes=-99999999999999999999999", 10),
            Part { first: 0, last: 9 }
        );
    }

    #[test]
    fn invalid_or_multiple_ranges_are_ignored() {
        for h in [
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "bytes=0-1,4-5",
            "bytes=1",
        ] {
            assert_eq!(choose(h, 10), Whole, "{h}");
        }
    }

    #[test]
    fn every_chosen_part_lies_inside_the_file() {
        for size in 0..20u64 {
            for h in [
                "bytes=0-0",
                "bytes=3-",
                "bytes=-1",
                "bytes=-25",
                "bytes=4-7",
                "bytes=19-40",
            ] {
                if let Part { first, last } = choose(h, size) {
                    assert!(first <= last && last < size, "{h} on {size}");
                }
            }
        }
    }
}
