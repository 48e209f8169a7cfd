//! Gives the heap's free memory back to the OS after a burst. glibc's malloc keeps what it freed
//! inside its arenas (below the mmap threshold, 128 KiB and up, so request bodies, parsed
//! tensors and passes' activations), so a flood of requests left the server 100+ MiB larger for
//! good (`tests/flood.rs`). A background thread checks every [`CHECK_EVERY`] how much the
//! arenas hold free (`mallinfo2`) and, above [`TRIM_ABOVE_BYTES`], calls `malloc_trim(0)`,
//! which returns whole free pages with `madvise`. Other allocators and platforms: nothing to do.

use std::time::Duration;

/// How often the free heap is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Free bytes held in the arenas above which they are trimmed.
pub const TRIM_ABOVE_BYTES: usize = 4 << 20;

/// Starts the trimming thread once per process (later calls do nothing).
pub fn start_trimming() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let spawned = std::thread::Builder::new()
                .name("heap-trim".into())
                .spawn(|| loop {
                    std::thread::sleep(CHECK_EVERY);
                    trim_if_above(TRIM_ABOVE_BYTES);
                });
            if let Err(err) = spawned {
                tracing::warn!(error = %err, "cannot start the heap-trimming thread");
            }
        }
    });
}

/// Bytes free inside malloc's arenas (glibc), `None` elsewhere.
pub fn free_heap_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads malloc's statistics.
        let info = unsafe { libc::mallinfo2() };
        Some(info.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Trims the heap when more than `threshold` bytes sit free in it; answers whether it did.
pub fn trim_if_above(threshold: usize) -> bool {
    match free_heap_bytes() {
        Some(free) if free > threshold => {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory of malloc's own arenas.
            unsafe {
                libc::malloc_trim(0);
            }
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_blocks_are_counted_and_trimmed_back() {
        // 64 blocks of 100 KiB (below the mmap threshold, so they live in an arena); every
        // other one freed leaves holes the arena cannot give back by shrinking its top.
        let mut blocks: Vec<Option<Vec<u8>>> =
            (0..64).map(|i| Some(vec![i as u8; 100 << 10])).collect();
        let before = free_heap_bytes().unwrap();
        for block in blocks.iter_mut().step_by(2) {
            *block = None;
        }
        let freed = free_heap_bytes().unwrap();
        assert!(freed >= before + (2 << 20), "free heap {before} -> {freed}");
        assert!(trim_if_above(0), "something to trim");
        assert!(!trim_if_above(usize::MAX));
        drop(blocks);
    }
}
