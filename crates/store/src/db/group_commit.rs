//! Group commit of SQLite writes.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` every COMMIT waits for an fsync
//! of the write-ahead log, so one transaction per write caps a busy store at about one write per
//! fsync. Each SQLite pool therefore has one writer task. It takes every write queued while its
//! previous transaction ran (at most [`MAX_GROUP`], so one group can not hold the lock for long)
//! and applies them in one `BEGIN IMMEDIATE … COMMIT`, each write in a savepoint of its own:
//!
//! - A write that breaks a rule or fails in the database is rolled back to its savepoint and
//!   answered with its own error; the other writes of the group go on. A retryable database error
//!   reruns just that write, a bounded number of times.
//! - Durability is unchanged: answers are sent only after the COMMIT that holds the write has
//!   returned, so an `Ok` still means the write is on disk. When BEGIN, COMMIT or a savepoint
//!   statement fails, nothing of the group was committed and every write of the group gets an
//!   error; the whole group is retried first when the database says a retry can succeed (another
//!   process holding the write lock).
//! - The writer task owns the transaction: a caller that goes away cancels nothing halfway, its
//!   write is applied (or not) with its group and nobody reads the answer.
//!
//! A write that arrives while the writer is idle is a group of one: nobody waits for a group to
//! fill.
//!
//! A group runs on one blocking thread from BEGIN to COMMIT, every statement on the spot
//! ([`super::sqlite_thread`]): the writes' async code is the same as on PostgreSQL, without a
//! trip to another thread per statement.

use std::pin::Pin;
use std::time::Duration;

use diesel::connection::AnsiTransactionManager;
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool as DeadPool;
use diesel_async::{AsyncConnection, SimpleAsyncConnection, TransactionManager};
use tokio::sync::{mpsc, oneshot};

use super::sqlite_thread::run_in_place;
use super::{Db, MAX_ATTEMPTS, Operation, SqliteConn, classify, is_retryable, unavailable};
use crate::error::{StoreError, TxError};

/// The most writes one transaction applies.
const MAX_GROUP: usize = 64;
/// Writes waiting for the writer task; further callers wait to queue.
const QUEUE: usize = 1024;
/// The savepoint around each write of a group (one at a time, so one name is enough).
const SAVEPOINT: &str = "SAVEPOINT functionary_write";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO functionary_write";
const RELEASE_SAVEPOINT: &str = "RELEASE functionary_write";
/// Ends one write's savepoint and opens the next one's in a single call to the connection's
/// thread: a write of a group costs one such call beside its own statements.
const RELEASE_AND_OPEN_SAVEPOINT: &str = "RELEASE functionary_write; SAVEPOINT functionary_write";

type WeakPool<C> = deadpool::managed::WeakPool<AsyncDieselConnectionManager<C>>;
type SqliteTransactions = <SqliteConn as AsyncConnection>::TransactionManager;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The queue of a pool's writer task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer task of `pool`; it ends when the last handle on its queue is dropped.
    /// The task does not keep the pool alive: dropping the store closes its connections at once,
    /// as before, so that another process can open the file right away.
    pub(super) fn spawn(pool: &DeadPool<SqliteConn>) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool.weak(), jobs));
        Self { queue }
    }

    /// Queues `op` and waits for its answer, which comes after the COMMIT of its group.
    pub(super) async fn write<O>(&self, op: O) -> Result<O::Output, StoreError>
    where
        O: Operation + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Queued {
            op,
            outcome: None,
            reply,
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer stopped".to_owned()))?;
        answer.await.map_err(|_| {
            // Whether the write was committed is unknown: never an `Ok`.
            StoreError::Internal("the SQLite writer dropped a write without an answer".to_owned())
        })?
    }
}

/// A queued write with its output type erased, so that writes of every kind share a group.
trait Job: Send {
    /// Runs the write once in the group's transaction and keeps its output for the answer.
    fn attempt<'a>(&'a mut self, db: &'a mut Db<'_>) -> BoxFuture<'a, Result<(), TxError>>;
    /// Keeps `error` as this write's answer: the write was rolled back to its savepoint.
    fn fail(&mut self, error: StoreError);
    /// Answers the caller: with what the write kept when its group committed, else with the
    /// group's error.
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Queued<O: Operation> {
    op: O,
    outcome: Option<Result<O::Output, StoreError>>,
    reply: oneshot::Sender<Result<O::Output, StoreError>>,
}

impl<O: Operation + Send + 'static> Job for Queued<O> {
    fn attempt<'a>(&'a mut self, db: &'a mut Db<'_>) -> BoxFuture<'a, Result<(), TxError>> {
        Box::pin(async move {
            self.outcome = None;
            let output = self.op.run(db).await?;
            self.outcome = Some(Ok(output));
            Ok(())
        })
    }

    fn fail(&mut self, error: StoreError) {
        self.outcome = Some(Err(error));
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match committed {
            Ok(()) => self.outcome.unwrap_or_else(|| {
                Err(StoreError::Internal(
                    "a write of a committed group has no outcome".to_owned(),
                ))
            }),
            Err(error) => Err(error),
        };
        // The caller may have gone away; the write is committed or not all the same.
        let _ = self.reply.send(answer);
    }
}

/// The writer task: applies the queued writes group by group until every handle is dropped.
async fn run(pool: WeakPool<SqliteConn>, mut jobs: mpsc::Receiver<Box<dyn Job>>) {
    loop {
        let mut group = Vec::with_capacity(MAX_GROUP);
        if jobs.recv_many(&mut group, MAX_GROUP).await == 0 {
            return;
        }
        let pool = pool.upgrade();
        let runtime = tokio::runtime::Handle::current();
        // Each group on a blocking thread of its own, its statements run there on the spot
        // (no trip to another thread per statement). Should a write panic, its group is lost
        // (its callers see their answers dropped) but the writer goes on with the next group.
        let _ = tokio::task::spawn_blocking(move || {
            run_in_place(|| {
                runtime.block_on(async move {
                    let committed = match pool {
                        // The pool handle goes before the answers do: a caller that drops the
                        // store on its answer closes the connections at once.
                        Some(pool) => commit(&pool, &mut group).await,
                        None => Err(StoreError::Unavailable("the store is closed".to_owned())),
                    };
                    for job in group {
                        job.answer(committed.clone());
                    }
                });
            });
        })
        .await;
    }
}

/// Applies `group` in one transaction, and again from the start while the transaction fails
/// with an error a retry can cure (a busy file). `Err`: nothing of the group was committed.
async fn commit(pool: &DeadPool<SqliteConn>, group: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut conn = pool.get().await.map_err(unavailable)?;
        match transaction(&mut conn, group).await {
            Ok(()) => return Ok(()),
            Err(error) if is_retryable(&error) && attempt < MAX_ATTEMPTS => {
                drop(conn);
                tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
            }
            Err(error) => return Err(classify(error)),
        }
    }
}

/// One `BEGIN IMMEDIATE … COMMIT` over the group (what `immediate_transaction` does, with the
/// error that broke the group kept rather than the one of the ROLLBACK after it).
async fn transaction(conn: &mut SqliteConn, group: &mut [Box<dyn Job>]) -> Result<(), DieselError> {
    conn.spawn_blocking(|conn| {
        AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")
    })
    .await?;
    let applied = async {
        SimpleAsyncConnection::batch_execute(conn, SAVEPOINT).await?;
        let last = group.len().saturating_sub(1);
        for (index, job) in group.iter_mut().enumerate() {
            let then = if index == last {
                RELEASE_SAVEPOINT
            } else {
                RELEASE_AND_OPEN_SAVEPOINT
            };
            apply(conn, job.as_mut(), then).await?;
        }
        Ok(())
    }
    .await;
    match applied {
        Ok(()) => SqliteTransactions::commit_transaction(conn).await,
        Err(error) => {
            // A failed ROLLBACK marks the connection broken: the pool closes it instead of
            // reusing it, and closing ends the transaction.
            let _ = SqliteTransactions::rollback_transaction(conn).await;
            Err(error)
        }
    }
}

/// Runs one write in the savepoint opened for it, rerunning it on a retryable error; a write
/// that fails is rolled back to its savepoint and keeps its error. `then` releases the savepoint
/// (and opens the next write's). `Err`: a savepoint statement failed, so the group's transaction
/// can not be trusted any more.
async fn apply(conn: &mut SqliteConn, job: &mut dyn Job, then: &str) -> Result<(), DieselError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Err(error) = job.attempt(&mut Db::Sqlite(conn)).await else {
            break;
        };
        if let Err(rollback_error) =
            SimpleAsyncConnection::batch_execute(conn, ROLLBACK_TO_SAVEPOINT).await
        {
            // SQLite ends the whole transaction on some errors (a full disk, an I/O error):
            // then the write's own error says why.
            return Err(match error {
                TxError::Db(error) => error,
                TxError::Rule(_) => rollback_error,
            });
        }
        match error {
            TxError::Db(error) if is_retryable(&error) && attempt < MAX_ATTEMPTS => continue,
            TxError::Db(error) => job.fail(classify(error)),
            TxError::Rule(error) => job.fail(error),
        }
        break;
    }
    SimpleAsyncConnection::batch_execute(conn, then).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use diesel::QueryableByName;
    use diesel::result::DatabaseErrorKind;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    use tokio::sync::Notify;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::db::{DatabaseUrl, Pool, StoreOptions, on_db};

    /// Runs SQL statements.
    struct Sql(&'static str);

    impl Operation for Sql {
        type Output = ();

        async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
            Ok(on_db!(db, conn => SimpleAsyncConnection::batch_execute(conn, self.0).await)?)
        }
    }

    /// Inserts a key.
    struct Insert(String);

    impl Operation for Insert {
        type Output = ();

        async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
            insert(db, &self.0).await
        }
    }

    /// Inserts a key, then breaks a rule.
    struct InsertThenRefuse(&'static str);

    impl Operation for InsertThenRefuse {
        type Output = ();

        async fn run(&self, db: &mut Db<'_>) -> Result<(), TxError> {
            insert(db, self.0).await?;
            Err(StoreError::invalid("refused", "refused after a write", Vec::new()).into())
        }
    }

    /// Inserts a key; its first attempt also inserts it twice, a retryable unique violation.
    struct InsertOnSecondAttempt {
        key: &'static str,
        attempts: Arc<AtomicU32>,
    }

    impl Operation for InsertOnSecondAttempt {
        type Output = u32;

        async fn run(&self, db: &mut Db<'_>) -> Result<u32, TxError> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            insert(db, self.key).await?;
            if attempt == 1 {
                insert(db, self.key).await?;
            }
            Ok(attempt)
        }
    }

    /// Holds the writer in its transaction from `started` until `release`.
    struct Gate {
        started: Arc<Notify>,
        release: Arc<Notify>,
    }

    impl Operation for Gate {
        type Output = ();

        async fn run(&self, _db: &mut Db<'_>) -> Result<(), TxError> {
            self.started.notify_one();
            self.release.notified().await;
            Ok(())
        }
    }

    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = Text)]
        k: String,
    }

    /// The stored keys, in order.
    struct Keys;

    impl Operation for Keys {
        type Output = Vec<String>;

        async fn run(&self, db: &mut Db<'_>) -> Result<Vec<String>, TxError> {
            let keys: Vec<Key> = on_db!(db, conn => {
                diesel::sql_query("SELECT k FROM scratch ORDER BY k").load(conn).await
            })?;
            Ok(keys.into_iter().map(|key| key.k).collect())
        }
    }

    async fn insert(db: &mut Db<'_>, key: &str) -> Result<(), TxError> {
        on_db!(db, conn => {
            diesel::sql_query("INSERT INTO scratch (k) VALUES (?)")
                .bind::<Text, _>(key)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    async fn open() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = DatabaseUrl::Sqlite(dir.path().join("group.db"));
        let pool = Pool::open(&url, &StoreOptions::default())
            .await
            .expect("the pool opens");
        pool.write(Sql("CREATE TABLE scratch (k TEXT PRIMARY KEY)"))
            .await
            .expect("the table is created");
        (dir, pool)
    }

    fn queue(pool: &Pool) -> &mpsc::Sender<Box<dyn Job>> {
        match pool {
            Pool::Sqlite { writer, .. } => &writer.queue,
            Pool::Pg(_) => panic!("an SQLite pool"),
        }
    }

    /// Waits until `n` writes wait in the writer's queue.
    async fn queued(pool: &Pool, n: usize) {
        let queue = queue(pool);
        while queue.max_capacity() - queue.capacity() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Starts a write; it is queued once `queued` says so.
    fn submit<O>(pool: &Pool, op: O) -> JoinHandle<Result<O::Output, StoreError>>
    where
        O: Operation + Send + 'static,
    {
        let pool = pool.clone();
        tokio::spawn(async move { pool.write(op).await })
    }

    /// Starts a write that holds the writer until the returned notify is notified.
    async fn hold(pool: &Pool) -> (Arc<Notify>, JoinHandle<Result<(), StoreError>>) {
        let started = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let gate = submit(
            pool,
            Gate {
                started: Arc::clone(&started),
                release: Arc::clone(&release),
            },
        );
        started.notified().await;
        (release, gate)
    }

    async fn answer<T>(write: JoinHandle<Result<T, StoreError>>) -> Result<T, StoreError> {
        write.await.expect("the write task")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_write_of_a_group_fails_or_succeeds_alone() {
        let (_dir, pool) = open().await;
        let (release, gate) = hold(&pool).await;
        let attempts = Arc::new(AtomicU32::new(0));
        let a = submit(&pool, Sql("INSERT INTO scratch (k) VALUES ('a')"));
        queued(&pool, 1).await;
        let refused = submit(&pool, InsertThenRefuse("b"));
        queued(&pool, 2).await;
        let failed = submit(
            &pool,
            Sql("INSERT INTO scratch (k) VALUES ('c'); INSERT INTO nowhere VALUES (1)"),
        );
        queued(&pool, 3).await;
        let retried = submit(
            &pool,
            InsertOnSecondAttempt {
                key: "d",
                attempts: Arc::clone(&attempts),
            },
        );
        queued(&pool, 4).await;
        let e = submit(&pool, Sql("INSERT INTO scratch (k) VALUES ('e')"));
        queued(&pool, 5).await;
        release.notify_one();

        answer(gate).await.expect("the gate");
        answer(a).await.expect("a is written");
        assert_eq!(
            answer(refused).await.expect_err("b is refused").code(),
            "refused"
        );
        assert!(matches!(
            answer(failed).await,
            Err(StoreError::Internal(message)) if message.contains("nowhere")
        ));
        assert_eq!(
            answer(retried).await,
            Ok(2),
            "d succeeds on its second attempt"
        );
        answer(e).await.expect("e is written");
        assert_eq!(pool.read(&Keys).await.expect("keys"), ["a", "d", "e"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retryable_error_that_persists_ends_as_unavailable() {
        let (_dir, pool) = open().await;
        pool.write(Sql("INSERT INTO scratch (k) VALUES ('a')"))
            .await
            .expect("a is written");
        let twice = pool
            .write(Sql("INSERT INTO scratch (k) VALUES ('b'), ('a')"))
            .await;
        assert!(
            matches!(twice, Err(StoreError::Unavailable(_))),
            "{twice:?}"
        );
        assert_eq!(pool.read(&Keys).await.expect("keys"), ["a"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_group_answers_every_write_with_an_error() {
        let (_dir, pool) = open().await;
        let (release, gate) = hold(&pool).await;
        let a = submit(&pool, Sql("INSERT INTO scratch (k) VALUES ('a')"));
        queued(&pool, 1).await;
        // Ends the group's transaction behind the writer's back: its savepoint is gone.
        let breaker = submit(&pool, Sql("ROLLBACK"));
        queued(&pool, 2).await;
        let b = submit(&pool, Sql("INSERT INTO scratch (k) VALUES ('b')"));
        queued(&pool, 3).await;
        release.notify_one();

        answer(gate).await.expect("the gate");
        for (name, write) in [("a", a), ("the breaker", breaker), ("b", b)] {
            let result = answer(write).await;
            assert!(result.is_err(), "{name} answered {result:?}");
        }
        assert!(pool.read(&Keys).await.expect("keys").is_empty());
        // The writer goes on with the next group on a sound connection.
        pool.write(Sql("INSERT INTO scratch (k) VALUES ('c')"))
            .await
            .expect("c is written");
        assert_eq!(pool.read(&Keys).await.expect("keys"), ["c"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_holds_at_most_max_group_writes() {
        let (_dir, pool) = open().await;
        let (release, gate) = hold(&pool).await;
        // The first write of the next group holds it too, so the queue can be looked at.
        let started = Arc::new(Notify::new());
        let release_next = Arc::new(Notify::new());
        let next_gate = submit(
            &pool,
            Gate {
                started: Arc::clone(&started),
                release: Arc::clone(&release_next),
            },
        );
        queued(&pool, 1).await;
        let writes: Vec<_> = (0..100)
            .map(|n| submit(&pool, Insert(format!("{n:03}"))))
            .collect();
        queued(&pool, 101).await;
        release.notify_one();
        started.notified().await;
        let queue = queue(&pool);
        assert_eq!(
            queue.max_capacity() - queue.capacity(),
            101 - MAX_GROUP,
            "the second group takes {MAX_GROUP} writes"
        );
        release_next.notify_one();
        answer(gate).await.expect("the gate");
        answer(next_gate).await.expect("the second gate");
        for write in writes {
            answer(write).await.expect("the write");
        }
        assert_eq!(pool.read(&Keys).await.expect("keys").len(), 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_goes_away_cancels_nothing() {
        let (_dir, pool) = open().await;
        let (release, gate) = hold(&pool).await;
        let gone = submit(&pool, Sql("INSERT INTO scratch (k) VALUES ('a')"));
        queued(&pool, 1).await;
        gone.abort();
        release.notify_one();
        answer(gate).await.expect("the gate");
        // Writes are applied in the order they were queued.
        pool.write(Sql("INSERT INTO scratch (k) VALUES ('b')"))
            .await
            .expect("b is written");
        assert_eq!(pool.read(&Keys).await.expect("keys"), ["a", "b"]);
    }

    #[test]
    fn unique_violations_are_retryable() {
        // The retry test above relies on it.
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed".to_owned()),
        );
        assert!(is_retryable(&error));
    }
}
