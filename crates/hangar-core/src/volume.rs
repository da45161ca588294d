//! The free space a volume keeps for metadata: uploads may not use it (the blob store refuses them
//! first), so that the database beside them can always write, and deleting files to make room
//! keeps working on a full disk.

/// Free space uploads must leave on a volume of `total` bytes: 5% of it, at least 256 KiB and at
/// most 1 GiB.
pub fn free_space_reserve(total: u64) -> u64 {
    (total / 20).clamp(256 << 10, 1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_reserve_scales_with_the_volume() {
        assert_eq!(free_space_reserve(4 << 20), 256 << 10);
        assert_eq!(free_space_reserve(16 << 20), (16 << 20) / 20);
        assert_eq!(free_space_reserve(100 << 30), 1 << 30);
        assert_eq!(free_space_reserve(10 << 30), 512 << 20);
    }
}
