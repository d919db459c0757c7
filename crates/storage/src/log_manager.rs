//! The logs of one broker's data directory, and the background maintenance that keeps them
//! within their retention and flush policies (Kafka's `LogManager`).
//!
//! Layout: `<root>/<topic>-<partition>/` per log. Maintenance runs on one thread: for each log, a
//! time-based flush when due, an fsync of rolled segments (which advances the recovery point),
//! retention, expiry of idle producer ids, and a checkpoint of the log state. Errors are logged and retried on the next pass;
//! they never stop the thread. A log that a disk failure took offline is skipped, not retried:
//! [`LogManager::offline_logs`] lists it for the broker, which gives up its replicas.

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::log::{Log, RecoveryReport};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;
use strata_common::{Clock, TopicPartition};
use tracing::warn;

pub struct LogManager {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    maintenance: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

/// One step of a maintenance pass.
type MaintenanceStep = fn(&Log) -> Result<()>;

impl LogManager {
    pub fn new(root: &Path, clock: Arc<dyn Clock>) -> Result<Arc<LogManager>> {
        fs::create_dir_all(root).map_err(StorageError::io("create data directory", root))?;
        Ok(Arc::new(LogManager {
            root: root.to_owned(),
            clock,
            logs: RwLock::new(HashMap::new()),
            maintenance: Mutex::new(None),
        }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log_directory(&self, partition: &TopicPartition) -> PathBuf {
        self.root
            .join(format!("{}-{}", partition.topic, partition.partition))
    }

    /// Partitions that have a log directory under the root, whether opened or not.
    pub fn partitions_on_disk(&self) -> Result<Vec<TopicPartition>> {
        let mut partitions = Vec::new();
        for entry in
            fs::read_dir(&self.root).map_err(StorageError::io("list data directory", &self.root))?
        {
            let entry = entry.map_err(StorageError::io("list data directory", &self.root))?;
            if !entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((topic, partition)) = name.rsplit_once('-')
                && let Ok(partition) = partition.parse::<i32>()
            {
                partitions.push(TopicPartition::new(topic, partition));
            }
        }
        partitions.sort();
        Ok(partitions)
    }

    /// Opens (recovering if needed) the log of `partition`, or returns it if already open.
    pub fn open_log(
        &self,
        partition: &TopicPartition,
        config: LogConfig,
    ) -> Result<(Arc<Log>, Option<RecoveryReport>)> {
        let mut logs = self.logs.write().expect("logs lock");
        if let Some(log) = logs.get(partition) {
            return Ok((log.clone(), None));
        }
        let (log, report) = Log::open(&self.log_directory(partition), config, self.clock.clone())?;
        let log = Arc::new(log);
        logs.insert(partition.clone(), log.clone());
        Ok((log, Some(report)))
    }

    pub fn get(&self, partition: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().expect("logs lock").get(partition).cloned()
    }

    pub fn logs(&self) -> Vec<(TopicPartition, Arc<Log>)> {
        self.logs
            .read()
            .expect("logs lock")
            .iter()
            .map(|(partition, log)| (partition.clone(), log.clone()))
            .collect()
    }

    /// The open logs that a disk failure took offline, each with the failure that did. They
    /// serve reads of what they hold and refuse every write; reopening one (after
    /// [`LogManager::forget_log`], once the disk is sound) recovers what was fsynced.
    pub fn offline_logs(&self) -> Vec<(TopicPartition, Arc<StorageError>)> {
        self.logs
            .read()
            .expect("logs lock")
            .iter()
            .filter_map(|(partition, log)| Some((partition.clone(), log.offline_cause()?)))
            .collect()
    }

    /// Drops a partition's log from the open set without touching its files, so the next
    /// [`LogManager::open_log`] opens (and recovers) its directory afresh: for a log that went
    /// offline. Readers holding its slices keep them.
    pub fn forget_log(&self, partition: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.write().expect("logs lock").remove(partition)
    }

    /// Closes and removes a partition's log and its directory.
    pub fn delete_log(&self, partition: &TopicPartition) -> Result<()> {
        let removed = self.logs.write().expect("logs lock").remove(partition);
        match removed {
            Some(log) => log.delete(),
            None => {
                let directory = self.log_directory(partition);
                match fs::remove_dir_all(&directory) {
                    Ok(()) => Ok(()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(error) => Err(StorageError::Io {
                        operation: "delete log directory",
                        path: directory,
                        source: error,
                    }),
                }
            }
        }
    }

    /// One maintenance pass over every open log.
    pub fn run_maintenance(&self) {
        for (partition, log) in self.logs() {
            let steps: [(&str, MaintenanceStep); 5] = [
                ("flush", Log::flush_if_due),
                ("sync rolled segments", Log::sync_rolled_segments),
                ("retention", |log| log.enforce_retention().map(|_| ())),
                ("producer id expiry", |log| {
                    log.expire_producer_ids().map(|_| ())
                }),
                ("checkpoint", Log::checkpoint),
            ];
            for (step, run) in steps {
                match run(&log) {
                    Ok(()) | Err(StorageError::Closed(_)) => {}
                    // Reported when it went offline; retrying could only hide lost writes.
                    Err(StorageError::Offline { .. }) => break,
                    Err(error) => {
                        warn!(%partition, step, %error, "log maintenance failed; will retry")
                    }
                }
            }
        }
    }

    /// Starts the maintenance thread, running a pass every `interval` until `close_all`.
    pub fn start_maintenance(self: &Arc<Self>, interval: Duration) {
        let (stop, stopped) = mpsc::channel::<()>();
        let manager: Weak<LogManager> = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("log-maintenance".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(manager) = manager.upgrade() else {
                        return;
                    };
                    manager.run_maintenance();
                }
            })
            .expect("spawn the log maintenance thread");
        if let Some((previous, handle)) = self
            .maintenance
            .lock()
            .expect("maintenance lock")
            .replace((stop, handle))
        {
            drop(previous);
            let _ = handle.join();
        }
    }

    /// Stops maintenance and closes every log cleanly (flushed, clean-shutdown marked).
    pub fn close_all(&self) -> Result<()> {
        if let Some((stop, handle)) = self.maintenance.lock().expect("maintenance lock").take() {
            drop(stop);
            let _ = handle.join();
        }
        let mut first_error = None;
        for (partition, log) in self.logs() {
            match log.close() {
                // An offline log cannot be closed cleanly; its next open recovers it, and the
                // broker learnt of it from `offline_logs`.
                Ok(()) | Err(StorageError::Closed(_)) | Err(StorageError::Offline { .. }) => {}
                Err(error) => {
                    warn!(%partition, %error, "could not close log cleanly");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
