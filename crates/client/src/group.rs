//! Consumer groups on the client side: the background heartbeat that keeps a subscribed consumer
//! in its group (KIP-848: the coordinator computes
//! the assignment; the member reports what it owns and learns what it may consume).
//!
//! The heartbeat task never touches the consumer's partitions. It records the coordinator's
//! latest answer; the consumer applies it inside `poll` (giving up revoked partitions after
//! committing them, then taking new ones at their committed offsets) and reports back what it
//! owns, which the next heartbeat — sent at once — tells the coordinator.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use strata_common::{ErrorCode, TopicPartition};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::coordinator::CoordinatorLocator;
use crate::error::{Error, Result};
use crate::grpc::{self, Heartbeat};
use crate::retry::Backoff;

/// What a rebalance did to a subscribed consumer, in the order it happened; read them with
/// `Consumer::rebalance_events`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// The consumer now consumes these, from their committed offsets.
    Assigned(Vec<TopicPartition>),
    /// The consumer gave these up; with auto-commit their positions were committed first.
    Revoked(Vec<TopicPartition>),
    /// The consumer was removed from the group (missed heartbeats, or did not poll within
    /// `max_poll_interval_ms`) and lost these without committing; another member may already
    /// consume them. It rejoins by itself.
    Lost(Vec<TopicPartition>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the heartbeat task and the consumer share.
#[derive(Debug)]
struct MemberState {
    member_id: String,
    member_epoch: i32,
    subscription: BTreeSet<String>,
    /// What the consumer consumes now, as it last reported.
    owned: BTreeSet<TopicPartition>,
    /// The coordinator's latest answer: what the consumer may consume.
    assignment: BTreeSet<TopicPartition>,
    /// The member was removed; the consumer must drop its partitions without committing.
    fenced: bool,
    fatal: Option<Error>,
    last_poll: Instant,
    /// Left because the application stopped polling; rejoins at the next poll.
    left_idle: bool,
}

/// Settings the heartbeat task sends.
#[derive(Clone, Debug)]
pub(crate) struct MembershipSettings {
    pub instance_id: Option<String>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub max_poll_interval: Duration,
    pub assignor: Option<String>,
}

/// A subscribed consumer's membership: a background task heartbeating to the coordinator.
pub(crate) struct Membership {
    locator: Arc<CoordinatorLocator>,
    state: Arc<Mutex<MemberState>>,
    wake: Arc<Notify>,
    changed: watch::Receiver<u64>,
    settings: MembershipSettings,
    task: JoinHandle<()>,
}

/// What the consumer must apply.
#[derive(Debug)]
pub(crate) struct MembershipView {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: BTreeSet<TopicPartition>,
    pub fenced: bool,
}

impl Membership {
    pub(crate) fn start(
        locator: Arc<CoordinatorLocator>,
        subscription: BTreeSet<String>,
        settings: MembershipSettings,
    ) -> Membership {
        let state = Arc::new(Mutex::new(MemberState {
            member_id: String::new(),
            member_epoch: 0,
            subscription,
            owned: BTreeSet::new(),
            assignment: BTreeSet::new(),
            fenced: false,
            fatal: None,
            last_poll: Instant::now(),
            left_idle: false,
        }));
        let wake = Arc::new(Notify::new());
        let (changed_sender, changed) = watch::channel(0u64);
        let task = tokio::spawn(heartbeat_loop(
            locator.clone(),
            state.clone(),
            wake.clone(),
            changed_sender,
            settings.clone(),
        ));
        Membership {
            locator,
            state,
            wake,
            changed,
            settings,
            task,
        }
    }

    pub(crate) fn set_subscription(&self, subscription: BTreeSet<String>) {
        let mut state = lock(&self.state);
        if state.subscription != subscription {
            state.subscription = subscription;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Called by every poll: proves the application is alive and rejoins after an idle leave.
    /// Returns the error that stopped the membership, if one did.
    pub(crate) fn on_poll(&self) -> Result<()> {
        let mut state = lock(&self.state);
        state.last_poll = Instant::now();
        if let Some(error) = &state.fatal {
            return Err(error.clone());
        }
        if state.left_idle {
            state.left_idle = false;
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    pub(crate) fn view(&self) -> MembershipView {
        let state = lock(&self.state);
        MembershipView {
            member_id: state.member_id.clone(),
            member_epoch: state.member_epoch,
            assignment: state.assignment.clone(),
            fenced: state.fenced,
        }
    }

    /// The consumer now owns `owned`; the coordinator hears it at once.
    pub(crate) fn report_owned(&self, owned: BTreeSet<TopicPartition>, fenced_handled: bool) {
        let mut state = lock(&self.state);
        if fenced_handled {
            state.fenced = false;
        }
        if state.owned != owned {
            state.owned = owned;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Waits until the coordinator's answer changes, or `timeout` passes.
    pub(crate) async fn changed(&mut self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.changed()).await;
    }

    /// The member id and epoch to commit with; `None` before the first assignment.
    pub(crate) fn commit_identity(&self) -> Option<(String, i32)> {
        let state = lock(&self.state);
        (state.member_epoch > 0).then(|| (state.member_id.clone(), state.member_epoch))
    }

    /// Stops heartbeating and leaves the group: a static member leaves temporarily (epoch -2),
    /// keeping its partitions for its session timeout; others leave for good (-1).
    pub(crate) async fn leave(self) {
        self.task.abort();
        let (member_id, member_epoch) = {
            let state = lock(&self.state);
            (state.member_id.clone(), state.member_epoch)
        };
        if member_id.is_empty() || member_epoch <= 0 {
            return;
        }
        let leave_epoch = if self.settings.instance_id.is_some() {
            -2
        } else {
            -1
        };
        let heartbeat = Heartbeat {
            group_id: self.locator.group_id().to_string(),
            member_id,
            member_epoch: leave_epoch,
            instance_id: self.settings.instance_id.clone(),
            rebalance_timeout_ms: millis(self.settings.rebalance_timeout),
            session_timeout_ms: millis(self.settings.session_timeout),
            subscribed_topics: BTreeSet::new(),
            assignor: None,
            owned: BTreeSet::new(),
        };
        let timeout = self.locator.request_timeout();
        if let Err(error) = self
            .locator
            .once(|connection| async move {
                grpc::consumer_group_heartbeat(&connection, &heartbeat, timeout).await
            })
            .await
        {
            tracing::warn!(%error, "could not leave the group; the session timeout will remove this member");
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

async fn heartbeat_loop(
    locator: Arc<CoordinatorLocator>,
    state: Arc<Mutex<MemberState>>,
    wake: Arc<Notify>,
    changed: watch::Sender<u64>,
    settings: MembershipSettings,
) {
    let mut interval = Duration::ZERO;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    let timeout = locator.request_timeout().min(settings.session_timeout);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => {}
        }
        let (heartbeat, leaving) = {
            let mut member = lock(&state);
            if member.left_idle || member.fatal.is_some() {
                interval = Duration::from_secs(3600);
                continue;
            }
            let idle =
                member.member_epoch > 0 && member.last_poll.elapsed() > settings.max_poll_interval;
            let heartbeat = Heartbeat {
                group_id: locator.group_id().to_string(),
                member_id: member.member_id.clone(),
                member_epoch: if idle { -1 } else { member.member_epoch },
                instance_id: settings.instance_id.clone(),
                rebalance_timeout_ms: millis(settings.rebalance_timeout),
                session_timeout_ms: millis(settings.session_timeout),
                subscribed_topics: member.subscription.clone(),
                assignor: settings.assignor.clone(),
                owned: member.owned.clone(),
            };
            if idle {
                tracing::warn!(
                    max_poll_interval_ms = settings.max_poll_interval.as_millis() as u64,
                    "poll was not called within max_poll_interval_ms; leaving the group so its partitions move to live members"
                );
                member.left_idle = true;
                member.fenced = true;
                member.member_id.clear();
                member.member_epoch = 0;
                member.assignment.clear();
                changed.send_modify(|version| *version += 1);
            }
            (heartbeat, idle)
        };
        if leaving {
            let _ = locator
                .once(|connection| async move {
                    grpc::consumer_group_heartbeat(&connection, &heartbeat, timeout).await
                })
                .await;
            continue;
        }
        let answer = locator
            .once(|connection| {
                let heartbeat = heartbeat.clone();
                async move { grpc::consumer_group_heartbeat(&connection, &heartbeat, timeout).await }
            })
            .await;
        let mut member = lock(&state);
        match answer {
            Ok(answer) => {
                backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
                member.member_id = answer.member_id;
                member.member_epoch = answer.member_epoch;
                interval = answer.heartbeat_interval.max(Duration::from_millis(10));
                if member.assignment != answer.assignment {
                    member.assignment = answer.assignment;
                    changed.send_modify(|version| *version += 1);
                }
            }
            Err(error)
                if matches!(
                    error.code(),
                    Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch)
                ) =>
            {
                tracing::warn!(%error, "removed from the group; rejoining");
                member.member_id.clear();
                member.member_epoch = 0;
                member.fenced = true;
                member.assignment.clear();
                changed.send_modify(|version| *version += 1);
                interval = Duration::ZERO;
            }
            Err(error) if error.is_retriable() => {
                tracing::debug!(%error, "heartbeat failed; retrying");
                interval = backoff.next_delay();
            }
            Err(error) => {
                tracing::warn!(%error, "the group refused this member");
                member.fatal = Some(error);
                changed.send_modify(|version| *version += 1);
            }
        }
    }
}
