//! [`with_prefault`]: runs a read into fresh memory while a helper thread
//! asks the kernel to fault the destination's pages in ahead of it
//! (`madvise(MADV_POPULATE_WRITE)`, Linux 5.14+), so that the zeroing of
//! fresh pages and the copying of the values overlap on two cores instead
//! of taking turns. Only timing changes: populating a page does not change
//! what it holds (a fresh page reads as zeros either way), so the helper
//! and the reader need no synchronisation. Where the call is unsupported
//! the helper stops at once and the reader faults its pages itself.

use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes populated per call, so the helper notices `stop` quickly.
const STEP: usize = 16 << 20;

/// Runs `read` while a helper populates `regions` (`(address, bytes)` of
/// memory `read` writes; the caller keeps it allocated for the call), all
/// of them front to back in step, `STEP` bytes at a time.
pub(crate) fn with_prefault<R>(regions: &[(usize, usize)], read: impl FnOnce() -> R) -> R {
    let total: usize = regions.iter().map(|r| r.1).sum();
    if total < 4 * STEP {
        return read();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| populate(regions, &stop));
        // The helper stops when the read ends, however it ends.
        let _stop = StopOnDrop(&stop);
        read()
    })
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(target_os = "linux")]
fn populate(regions: &[(usize, usize)], stop: &AtomicBool) {
    const MADV_POPULATE_WRITE: libc::c_int = 23;
    const PAGE: usize = 4096;
    // madvise needs a page-aligned start; a partial first page is left to
    // the reader.
    let spans: Vec<(usize, usize)> = regions
        .iter()
        .map(|&(addr, len)| (addr.next_multiple_of(PAGE), addr + len))
        .collect();
    // Transparent huge pages where the system leaves them to madvise: one
    // fault and one zeroing per 2 MiB instead of per 4 kiB (on a VM each
    // 4 kiB first touch also faults in the host). Advice only: where THP
    // is off or unsupported the call fails and the pages stay small.
    for &(start, end) in &spans {
        if end > start {
            // SAFETY: as for MADV_POPULATE_WRITE below; MADV_HUGEPAGE only
            // changes how the range's future pages are backed.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    let longest = spans
        .iter()
        .map(|&(a, e)| e.saturating_sub(a))
        .max()
        .unwrap_or(0);
    let mut off = 0;
    while off < longest {
        for &(start, end) in &spans {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let a = start + off;
            if a >= end {
                continue;
            }
            let n = STEP.min(end - a);
            // SAFETY: [a, a + n) lies inside an allocation the caller
            // keeps alive for the whole call (`with_prefault`'s contract);
            // MADV_POPULATE_WRITE only faults pages in (content unchanged)
            // and reports failure through its return value.
            let rc = unsafe { libc::madvise(a as *mut libc::c_void, n, MADV_POPULATE_WRITE) };
            if rc != 0 {
                return;
            }
        }
        off += STEP;
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_regions: &[(usize, usize)], _stop: &AtomicBool) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read large enough for the helper to run: what the read wrote is
    /// what the memory holds afterwards (the helper never writes).
    #[test]
    fn prefaulting_leaves_the_values_the_read_writes() {
        let n = 24 << 20; // 96 MiB of u32, above the 4-step threshold
        let mut v: Vec<u32> = Vec::with_capacity(n);
        let spare = v.spare_capacity_mut();
        let region = [(spare.as_ptr() as usize, std::mem::size_of_val(spare))];
        let written = with_prefault(&region, || {
            for (i, o) in spare.iter_mut().enumerate() {
                o.write((i as u32).wrapping_mul(2_654_435_761));
            }
            spare.len()
        });
        assert_eq!(written, n);
        // SAFETY: the closure initialised all `n` elements.
        unsafe { v.set_len(n) };
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u32).wrapping_mul(2_654_435_761)));
    }
}
