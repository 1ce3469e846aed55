//! A small pool of spinning helper threads for latency-bound products (the GEMVs of LLM
//! decoding): ~200 matrix-vector products of 20–200 µs each per token, with other work in
//! between.
//!
//! Forked through rayon, each product wakes a worker that fell asleep in the gap (a futex
//! wake, 50–80 µs on the dev VM), so most of a short product ran on one core. The helpers here
//! instead spin on an epoch counter for [`SPIN`] after their last job before they park, the
//! way llama.cpp's and bitnet.cpp's thread pools do, so back-to-back products start on every
//! core at once. One job at a time: a caller that finds the pool busy (another thread's
//! product, or a call from inside a job) runs its tasks with rayon instead.
//!
//! Soundness: [`run`] publishes a pointer to a job on its own stack and does not return until
//! every helper that could have read the pointer has left it (`active` back to zero after the
//! pointer is withdrawn), so the borrow it erases never outlives the call.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a helper spins for the next job before it parks.
const SPIN: Duration = Duration::from_millis(2);

/// One published job: tasks `0..tasks` of `f`, claimed through `next`.
struct Job {
    /// The caller's closure, lifetime erased (see the module docs).
    f: *const (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Job {
    /// Claims and runs tasks until none are left.
    fn work(&self) {
        loop {
            let t = self.next.fetch_add(1, SeqCst);
            if t >= self.tasks {
                return;
            }
            // SAFETY: `f` is alive while the job is published (module docs).
            let f = unsafe { &*self.f };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(t))) {
                self.panic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(p);
            }
            self.done.fetch_add(1, SeqCst);
        }
    }
}

struct Pool {
    /// Helper threads actually running.
    helpers: AtomicUsize,
    /// Serialises callers: one job at a time.
    busy: Mutex<()>,
    /// Bumped once per published job.
    epoch: AtomicU64,
    job: AtomicPtr<Job>,
    /// Helpers between reading `job` and leaving it.
    active: AtomicUsize,
    /// Parked helpers wait here for the next epoch.
    parked: Mutex<u64>,
    wake: Condvar,
}

thread_local! {
    static IS_HELPER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let wanted = rayon::current_num_threads().saturating_sub(1);
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            helpers: AtomicUsize::new(0),
            busy: Mutex::new(()),
            epoch: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicUsize::new(0),
            parked: Mutex::new(0),
            wake: Condvar::new(),
        }));
        let mut spawned = 0;
        for i in 0..wanted {
            let ok = std::thread::Builder::new()
                .name(format!("ternary-spin-{i}"))
                .spawn(move || helper(pool))
                .is_ok();
            if !ok {
                break;
            }
            spawned += 1;
        }
        pool.helpers.store(spawned, SeqCst);
        pool
    })
}

fn helper(pool: &'static Pool) {
    IS_HELPER.with(|h| h.set(true));
    let mut seen = pool.epoch.load(SeqCst);
    loop {
        // Spin for the next epoch, then park.
        let start = Instant::now();
        let mut spins = 0u32;
        while pool.epoch.load(SeqCst) == seen {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(1024) {
                continue;
            }
            // Give the core up now and then: rayon's workers may have work for it.
            std::thread::yield_now();
            if start.elapsed() > SPIN {
                let mut parked = pool.parked.lock().unwrap_or_else(|e| e.into_inner());
                while pool.epoch.load(SeqCst) == seen {
                    parked = pool.wake.wait(parked).unwrap_or_else(|e| e.into_inner());
                }
                break;
            }
        }
        seen = pool.epoch.load(SeqCst);
        pool.active.fetch_add(1, SeqCst);
        let job = pool.job.load(SeqCst);
        if !job.is_null() {
            // SAFETY: a non-null pointer read while `active` counts us stays valid until we
            // leave (the caller waits for `active == 0` after withdrawing it).
            unsafe { &*job }.work();
        }
        pool.active.fetch_sub(1, SeqCst);
    }
}

/// Runs `f(0)`, …, `f(tasks − 1)`, each exactly once, on the calling thread and the spinning
/// helpers (or on rayon's pool when this pool is busy); returns when all have run. A panic in
/// a task is resumed here after every task has finished.
pub(crate) fn run(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks == 0 {
        return;
    }
    let pool = pool();
    let guard = match pool.busy.try_lock() {
        Ok(g) if pool.helpers.load(SeqCst) > 0 && !IS_HELPER.with(|h| h.get()) => g,
        _ => {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(f);
            return;
        }
    };
    // SAFETY (lifetime erasure): the job is withdrawn and every reader gone before `run`
    // returns, so `f` outlives every use of the pointer.
    let f: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
    let job = Job {
        f,
        tasks,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        panic: Mutex::new(None),
    };
    pool.job.store(&job as *const Job as *mut Job, SeqCst);
    {
        let _parked = pool.parked.lock().unwrap_or_else(|e| e.into_inner());
        pool.epoch.fetch_add(1, SeqCst);
    }
    pool.wake.notify_all();
    job.work();
    while job.done.load(SeqCst) < tasks {
        std::hint::spin_loop();
    }
    pool.job.store(std::ptr::null_mut(), SeqCst);
    while pool.active.load(SeqCst) > 0 {
        std::hint::spin_loop();
    }
    drop(guard);
    let panic = job.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(p) = panic {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        for tasks in [1usize, 2, 3, 8, 100, 1000] {
            let counts: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            run(tasks, &|t| {
                counts[t].fetch_add(1, SeqCst);
            });
            assert!(counts.iter().all(|c| c.load(SeqCst) == 1), "{tasks} tasks");
        }
        run(0, &|_| panic!("no task to run"));
    }

    #[test]
    fn concurrent_and_nested_callers_fall_back_and_still_run_everything() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        run(6, &|_| {
                            // A nested call from inside a task: the pool is busy.
                            run(2, &|_| {
                                total.fetch_add(1, SeqCst);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 4 * 50 * 6 * 2);
    }

    #[test]
    fn a_panicking_task_is_resumed_in_the_caller_after_the_others() {
        let ran = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            run(16, &|t| {
                ran.fetch_add(1, SeqCst);
                if t == 5 {
                    panic!("task five");
                }
            })
        }));
        let msg = caught.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"task five"));
        assert_eq!(ran.load(SeqCst), 16);
        // The pool still works afterwards.
        let after = AtomicUsize::new(0);
        run(4, &|_| {
            after.fetch_add(1, SeqCst);
        });
        assert_eq!(after.load(SeqCst), 4);
    }

    #[test]
    fn parked_helpers_wake_for_the_next_job() {
        run(4, &|_| {});
        std::thread::sleep(SPIN * 3);
        let ran = AtomicUsize::new(0);
        run(64, &|_| {
            ran.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 64);
    }
}
