//! How much the server allocates per call: a global allocator that counts the allocations made
//! on the server's threads (its runtime's workers and blocking threads, marked when they start)
//! while a measurement is on, so the load generator's own allocations are left out.
//!
//! Counting is off outside [`Counting::measure`]: the throughput and latency phases pay one
//! relaxed load per allocation.
#![expect(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts, then calls System"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ON: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static SERVER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// The system allocator, counting the server threads' allocations while a measurement is on.
#[derive(Debug)]
pub struct Counting;

/// What the server's threads allocated during a measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocated {
    /// Calls to `alloc` and `realloc`.
    pub count: u64,
    pub bytes: u64,
}

impl Counting {
    /// Marks the calling thread as one of the server's: call it where the thread starts.
    pub fn mark_server_thread() {
        SERVER_THREAD.with(|server| server.set(true));
    }

    /// Runs `work` and returns what the server's threads allocated meanwhile. Measurements must
    /// not overlap.
    pub async fn measure<T>(work: impl Future<Output = T>) -> (T, Allocated) {
        COUNT.store(0, Relaxed);
        BYTES.store(0, Relaxed);
        ON.store(true, Relaxed);
        let output = work.await;
        ON.store(false, Relaxed);
        let allocated = Allocated {
            count: COUNT.load(Relaxed),
            bytes: BYTES.load(Relaxed),
        };
        (output, allocated)
    }
}

fn count(size: usize) {
    if ON.load(Relaxed) && SERVER_THREAD.try_with(Cell::get).unwrap_or(false) {
        COUNT.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only atomics and a const-initialized thread-local without a destructor, so it
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}
