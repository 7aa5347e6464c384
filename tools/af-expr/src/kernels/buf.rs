//! Matrix buffers, recycled.
//!
//! A fresh 100 MB matrix costs ~25 000 first-touch page faults (≈ 60 ms on these
//! machines, more than most kernels themselves). Evaluation therefore returns freed
//! matrices to a process-wide pool (bounded in bytes) and takes from it first; the GP and fitness
//! loops evaluate thousands of same-shaped matrices, so after warm-up no node pays for
//! page faults. Fresh buffers ask the kernel for transparent huge pages (2 MB faults
//! instead of 4 KB) and are first touched in parallel.
//!
//! Kernels' own working state (van Herk suffix arrays of a column chunk: ~1–2 MB) is
//! allocated per chunk; [`keep_freed_memory`] stops glibc from handing those pages back
//! to the kernel after each node, which made every node fault them in again.

use std::sync::Mutex;

use rayon::prelude::*;

/// Idle buffers are kept up to this many bytes in all (the longest-idle dropped
/// first). A freed matrix mostly serves the next node of the same shape, so the pool
/// rarely holds more than the evaluation's own high-water mark; a big merged DAG (all
/// 101 alphas on `full`: 2.8 GB live at peak) then stops dropping and re-faulting
/// matrices — with 8 buffers kept, a tenth of that run was the kernel zeroing fresh
/// pages (`perf`, issue 26).
const KEEP_BYTES: usize = 4 << 30;

static POOL: Mutex<Vec<Vec<f64>>> = Mutex::new(Vec::new());

/// A buffer of `n` cells whose contents are unspecified (but initialised): for kernels
/// that write every cell.
pub fn take(n: usize) -> Vec<f64> {
    if let Ok(mut pool) = POOL.lock() {
        if let Some(i) = pool.iter().position(|v| v.len() == n) {
            return pool.remove(i);
        }
    }
    fresh(n, f64::NAN)
}

/// A buffer of `n` cells all equal to `v`.
pub fn filled(n: usize, v: f64) -> Vec<f64> {
    let mut b = take(n);
    b.par_chunks_mut(1 << 16).for_each(|c| c.fill(v));
    b
}

/// Give a matrix back for reuse.
pub fn give(v: Vec<f64>) {
    if v.len() < (1 << 16) {
        return; // small: the allocator handles these well
    }
    if let Ok(mut pool) = POOL.lock() {
        // Over the budget, the longest-idle buffers go first (they may be of a shape
        // no longer evaluated, e.g. a previous date subsample).
        let mut held: usize = pool.iter().map(|b| b.len() * 8).sum();
        while held + v.len() * 8 > KEEP_BYTES && !pool.is_empty() {
            held -= pool.remove(0).len() * 8;
        }
        if held + v.len() * 8 <= KEEP_BYTES {
            pool.push(v);
        }
    }
}

/// Once per process: have glibc keep freed heap memory (trim only above 512 MB free)
/// and serve allocations up to 32 MB from the heap rather than fresh `mmap`s. Without
/// this, the 1–2 MB per-chunk state of the rolling kernels was returned to the OS when
/// a node finished and faulted in again (as zeroed huge pages) by the next one: a
/// fifth of `ts_std`'s time on `full` (issue 26, `perf`). Matrices are pooled above.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator tuning parameters; it is called once,
        // before the parallel evaluation that allocates.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
    });
}

fn fresh(n: usize, v: f64) -> Vec<f64> {
    let mut b: Vec<f64> = Vec::with_capacity(n);
    advise_huge(b.as_mut_ptr() as usize, n * 8);
    // SAFETY: capacity is n; every element is written by the parallel fill below
    // before the vector is read or returned.
    let spare = b.spare_capacity_mut();
    spare.par_chunks_mut(1 << 16).for_each(|c| {
        for x in c {
            x.write(v);
        }
    });
    unsafe { b.set_len(n) };
    b
}

#[cfg(target_os = "linux")]
fn advise_huge(addr: usize, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = addr.next_multiple_of(HUGE);
    let end = (addr + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE is only a
        // hint and does not change the memory's contents or validity.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_addr: usize, _len: usize) {}
