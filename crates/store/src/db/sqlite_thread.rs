//! Where a SQLite connection runs its statements.
//!
//! diesel-async's `SyncConnectionWrapper` hands every statement of a synchronous connection to
//! a blocking thread and awaits it: a trip from the async runtime to another thread and back per
//! statement, and an identify is several statements. The writer of a group
//! ([`super::group_commit`]) therefore runs the whole group on one blocking thread, inside
//! [`run_in_place`], where statements run on the spot. Everywhere else (reads from the pool)
//! a statement goes to a blocking thread as diesel-async does it.

use std::cell::Cell;
use std::error::Error;
use std::pin::Pin;
use std::task::{Context, Poll};

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

thread_local! {
    /// Whether this thread runs SQLite statements on the spot (inside [`run_in_place`]).
    static IN_PLACE: Cell<bool> = const { Cell::new(false) };
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The `SpawnBlocking` of the store's SQLite connections; see the module documentation.
#[derive(Debug)]
pub(crate) struct SqliteThread(Handle);

impl SpawnBlocking for SqliteThread {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        if IN_PLACE.with(Cell::get) {
            return Box::pin(std::future::ready(Ok(task())));
        }
        let running = Blocking {
            handle: self.0.clone(),
            task: self.0.spawn_blocking(task),
        };
        Box::pin(async move { running.await.map_err(Box::from) })
    }

    fn get_runtime() -> Self {
        Self(Handle::current())
    }
}

/// Runs `work` (a blocking thread's whole job) with every SQLite statement it makes run on this
/// thread, on the spot. Call it only on a thread that may block, never on an async worker.
pub(crate) fn run_in_place<T>(work: impl FnOnce() -> T) -> T {
    /// Turns running in place off again, also when `work` panics: the thread is pooled.
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            IN_PLACE.with(|in_place| in_place.set(false));
        }
    }
    IN_PLACE.with(|in_place| in_place.set(true));
    let _off = Off;
    work()
}

/// A statement running on a blocking thread. Dropped before it finished, it waits for the
/// statement to finish, so that the connection is never left to a statement nobody awaits
/// (what diesel-async's own spawner does too).
struct Blocking<R> {
    handle: Handle,
    task: JoinHandle<R>,
}

impl<R> Future for Blocking<R> {
    type Output = Result<R, tokio::task::JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().task).poll(cx)
    }
}

impl<R> Drop for Blocking<R> {
    fn drop(&mut self) {
        if !self.task.is_finished() {
            let task = &mut self.task;
            tokio::task::block_in_place(|| {
                let _ = self.handle.block_on(task);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn statements_run_on_the_spot_only_inside_run_in_place() {
        let mut spawner = SqliteThread::get_runtime();
        let here = std::thread::current().id();
        let elsewhere = spawner
            .spawn_blocking(|| std::thread::current().id())
            .await
            .ok();
        assert_ne!(elsewhere, Some(here), "outside: a blocking thread");
        let (inside, caller, after) = tokio::task::spawn_blocking(move || {
            let (inside, caller) = run_in_place(|| {
                let ran = Handle::current().block_on(async {
                    spawner
                        .spawn_blocking(|| std::thread::current().id())
                        .await
                        .ok()
                });
                (ran, std::thread::current().id())
            });
            // A panic inside does not leave the (pooled) thread running in place.
            let _ = std::panic::catch_unwind(|| run_in_place(|| panic!("in place")));
            (inside, caller, IN_PLACE.with(Cell::get))
        })
        .await
        .expect("the blocking task ran");
        assert_eq!(inside, Some(caller), "inside: the same thread");
        assert!(!after, "running in place ends with run_in_place");
    }
}
