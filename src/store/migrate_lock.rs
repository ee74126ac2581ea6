//! The SQLite migration lock: an exclusive lock on a file next to the database
//! (`changebot.db-migrate.lock` for `changebot.db`), held while a process sets the file up (the
//! one-time switch to WAL) and while it applies migrations.
//!
//! sqlx's SQLite migrator takes no lock, so two processes starting on a new file could both see
//! an empty schema and both try to create it ("table jobs already exists"). The lock is the
//! operating system's advisory file lock (`flock` on Unix, `LockFileEx` on Windows): it is
//! released when the holder closes the file or dies, so a crashed process never leaves it held.
//! The lock file itself is left in place; deleting it while processes run would let two of them
//! lock two different files.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng;

use super::StoreError;

/// How long to wait for another process to finish setting the database up.
const WAIT: Duration = Duration::from_secs(120);

/// The lock file for the SQLite database at `database`.
pub(super) fn path_for(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-migrate.lock");
    PathBuf::from(name)
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub(super) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock on `path` (creating the file), waiting up to two minutes for whoever holds
    /// it.
    pub(super) async fn acquire(path: &Path) -> Result<FileLock, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| {
                StoreError::Config(format!(
                    "cannot open the migration lock file {}: {e}",
                    path.display()
                ))
            })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(TryLockError::WouldBlock) if started.elapsed() < WAIT => {
                    // Short, jittered polls: the holder usually needs milliseconds.
                    let pause = rand::thread_rng().gen_range(5..=40);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Config(format!(
                        "another process has held the migration lock {} for over {} s; is a \
                         `changebot migrate` stuck?",
                        path.display(),
                        WAIT.as_secs()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Config(format!(
                        "cannot lock {} (does the file system support locks?): {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_next_to_the_database() {
        assert_eq!(
            path_for(Path::new("data/changebot.db")),
            PathBuf::from("data/changebot.db-migrate.lock")
        );
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("c.db"));
        let held = FileLock::acquire(&path).await.unwrap();
        // A second open file description is a second holder, even in this process.
        let other = File::open(&path).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), FileLock::acquire(&path))
            .await
            .expect("lock is free again");
        assert!(again.is_ok());
    }
}
