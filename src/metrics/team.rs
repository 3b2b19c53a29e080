//! [`map_chunks`]: the threads of the metrics' own kernels.
//!
//! libtorch's CPU operators (and MKL inside them) run on a GNU OpenMP team
//! whose workers spin for a while after every parallel region, waiting
//! for the next. Threads of our own started between two operators shared
//! the cores with those spinning workers: on the 2-vCPU machine the PCA
//! distance kernel ran 30 % slower inside an evaluation than alone. So when
//! libgomp is loaded (found with `dlsym`), the kernels run on that same
//! team through its `GOMP_parallel` entry point, the one an
//! `#pragma omp parallel` compiles to; elsewhere (another OpenMP runtime,
//! or none) they run on scoped threads. Either way the work is split the
//! same, so results do not depend on the route.

use std::ffi::{c_int, c_uint, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// `GOMP_parallel(fn, data, num_threads, flags)`.
type GompParallel =
    unsafe extern "C" fn(unsafe extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
/// `omp_get_thread_num()`.
type ThreadNum = unsafe extern "C" fn() -> c_int;

/// libgomp's entry points when the process has it loaded.
fn gomp() -> Option<(GompParallel, ThreadNum)> {
    static SYMS: OnceLock<Option<(GompParallel, ThreadNum)>> = OnceLock::new();
    *SYMS.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT only looks names up; the two
        // symbols, when present, have libgomp's documented signatures.
        unsafe {
            let par = libc::dlsym(libc::RTLD_DEFAULT, c"GOMP_parallel".as_ptr());
            let num = libc::dlsym(libc::RTLD_DEFAULT, c"omp_get_thread_num".as_ptr());
            if par.is_null() || num.is_null() {
                return None;
            }
            Some((
                std::mem::transmute::<*mut c_void, GompParallel>(par),
                std::mem::transmute::<*mut c_void, ThreadNum>(num),
            ))
        }
    })
}

/// `run(k)` for every `k` in `0..count`, in order, spread over `threads`
/// threads in contiguous runs of `k` (the results do not depend on the
/// split, the route or the timing).
pub(super) fn map_chunks<R: Send>(
    count: usize,
    threads: usize,
    run: impl Fn(usize) -> R + Sync,
) -> Result<Vec<R>> {
    let threads = threads.clamp(1, count.max(1));
    if threads <= 1 {
        return Ok((0..count).map(&run).collect());
    }
    let per = count.div_ceil(threads);
    let range = |t: usize| t * per..((t + 1) * per).min(count);
    // Per thread: None until it ran, then its results or Err on a panic.
    type Slot<R> = Mutex<Option<std::result::Result<Vec<R>, ()>>>;
    let slots: Vec<Slot<R>> = (0..threads).map(|_| Mutex::new(None)).collect();
    let work = |t: usize| {
        if let Some(slot) = slots.get(t) {
            // A panic must not unwind into C (or out of a scoped thread).
            let out = catch_unwind(AssertUnwindSafe(|| range(t).map(&run).collect::<Vec<R>>()));
            if let Ok(mut s) = slot.lock() {
                *s = Some(out.map_err(|_| ()));
            }
        }
    };
    match gomp() {
        Some((parallel, thread_num)) => on_team(parallel, thread_num, threads, &work),
        None => std::thread::scope(|sc| {
            for t in 0..threads {
                let work = &work;
                sc.spawn(move || work(t));
            }
        }),
    }
    // A run the team did not start (a smaller team than asked) is done
    // here; one that panicked is an error.
    let mut results = Vec::with_capacity(count);
    for (t, slot) in slots.into_iter().enumerate() {
        match slot.into_inner().map_err(|_| worker_failed())? {
            Some(Ok(out)) => results.extend(out),
            Some(Err(())) => return Err(worker_failed()),
            None => results.extend(range(t).map(&run)),
        }
    }
    if results.len() != count {
        return Err(worker_failed());
    }
    Ok(results)
}

fn worker_failed() -> Error {
    Error::invalid("metrics", "internal: a distance worker thread failed")
}

/// What each team thread receives.
struct Job<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    thread_num: ThreadNum,
    threads: usize,
}

/// Runs `work(t)` for `t` in `0..threads` on libgomp's team.
fn on_team(
    parallel: GompParallel,
    thread_num: ThreadNum,
    threads: usize,
    work: &(dyn Fn(usize) + Sync),
) {
    unsafe extern "C" fn body(data: *mut c_void) {
        // SAFETY: `data` is the `Job` below, alive until GOMP_parallel
        // returns, which is after every team thread left this function.
        let job = unsafe { &*(data as *const Job<'_>) };
        // SAFETY: libgomp's own function, called inside its team.
        let t = unsafe { (job.thread_num)() }.max(0) as usize;
        if t < job.threads {
            (job.work)(t);
        }
    }
    let job = Job {
        work,
        thread_num,
        threads,
    };
    let n = c_uint::try_from(threads).unwrap_or(1);
    // SAFETY: `body` only reads `job`, which outlives the call; libgomp
    // joins its team before GOMP_parallel returns.
    unsafe { parallel(body, &job as *const Job<'_> as *mut c_void, n, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_once_in_order_on_any_route() {
        for threads in [1, 2, 3, 8] {
            let out = map_chunks(10, threads, |k| k * k).unwrap();
            assert_eq!(out, (0..10).map(|k| k * k).collect::<Vec<_>>(), "{threads}");
        }
        assert!(map_chunks(0, 4, |k| k).unwrap().is_empty());
        // A worker's panic is an error, not a crash.
        let failed = map_chunks(8, 2, |k| {
            if k == 5 {
                panic!("deliberate panic in chunk {k}: the test expects an error")
            } else {
                k
            }
        });
        assert!(failed.is_err());
    }

    #[test]
    fn libgomp_is_found_where_libtorch_loads_it() {
        // libtorch's CPU library on Linux x86-64 is built with GNU OpenMP.
        let _ = tch::get_num_threads();
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert!(gomp().is_some());
        }
    }
}
