//! Range headers: whatever the header and size, a chosen range lies inside the file.
#![no_main]
use hangar_core::range::{choose, RangeChoice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (size, header) = input;
    let size = size % (1 << 50);
    if let RangeChoice::Part { first, last } = choose(header, size) {
        assert!(first <= last, "{header:?} on {size}");
        assert!(last < size, "{header:?} on {size}");
    }
});
