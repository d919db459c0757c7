//! The consumer's side of its group: subscriptions (to topics or a pattern), commits, and
//! applying the coordinator's assignment inside `poll`. The KIP-848 heartbeat that keeps the
//! membership alive runs in the background (the crate's `group` module); this side reads what it
//! learned and reports back what the consumer owns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use strata_common::{ErrorCode, TopicPartition, validate_topic_name};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::coordinator::CoordinatorLocator;
use crate::descriptions::OffsetAndMetadata;
use crate::error::{Error, Result};
use crate::group::{Membership, MembershipSettings, RebalanceEvent};
use crate::grpc;

use super::Consumer;

/// What a consumer subscribes to.
#[derive(Debug)]
enum Subscription {
    Topics(BTreeSet<String>),
    /// Matched against the cluster's topics whenever metadata is refreshed.
    Pattern(regex::Regex),
}

/// The consumer's side of its group.
pub(super) struct GroupClient {
    locator: Arc<CoordinatorLocator>,
    subscription: Option<Subscription>,
    membership: Option<Membership>,
    events: VecDeque<RebalanceEvent>,
    last_auto_commit: Instant,
    pattern_checked: Option<Instant>,
}

/// How often a pattern subscription looks for new matching topics.
const PATTERN_REFRESH: Duration = Duration::from_secs(5);

impl GroupClient {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        group_id: &str,
        request_timeout: Duration,
    ) -> GroupClient {
        GroupClient {
            locator: Arc::new(CoordinatorLocator::new(cluster, group_id, request_timeout)),
            subscription: None,
            membership: None,
            events: VecDeque::new(),
            last_auto_commit: Instant::now(),
            pattern_checked: None,
        }
    }
}

/// Consumer groups: subscribe, commit, and the rebalance protocol's client side.
impl Consumer {
    fn group(&self) -> Result<&GroupClient> {
        self.group.as_ref().ok_or_else(|| {
            Error::Config("this needs a consumer group: set group_id in the config".to_string())
        })
    }

    fn group_mut(&mut self) -> Result<&mut GroupClient> {
        self.group.as_mut().ok_or_else(|| {
            Error::Config("this needs a consumer group: set group_id in the config".to_string())
        })
    }

    /// The subscribed topics (those matching a pattern subscription when it was last checked);
    /// empty when not subscribed.
    pub fn subscription(&self) -> Vec<String> {
        match self
            .group
            .as_ref()
            .and_then(|group| group.subscription.as_ref())
        {
            Some(Subscription::Topics(topics)) => topics.iter().cloned().collect(),
            Some(Subscription::Pattern(regex)) => vec![regex.as_str().to_string()],
            None => Vec::new(),
        }
    }

    pub(super) fn is_subscribed(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|group| group.subscription.is_some())
    }

    /// Joins the group and consumes the partitions its coordinator assigns from `topics`.
    /// Replaces an earlier subscription; partitions come with the next `poll`s.
    pub fn subscribe<I, T>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(Error::InvalidInput(
                "subscribe needs at least one topic".to_string(),
            ));
        }
        for topic in &topics {
            validate_topic_name(topic).map_err(Error::InvalidInput)?;
        }
        self.start_subscription(Subscription::Topics(topics.clone()), topics)
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a regular expression),
    /// including topics created later; internal topics (`__...`) never match.
    pub async fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
            Error::InvalidInput(format!("'{pattern}' is not a valid pattern: {error}"))
        })?;
        let topics = self.topics_matching(&regex).await?;
        self.start_subscription(Subscription::Pattern(regex), topics)?;
        self.group_mut()?.pattern_checked = Some(Instant::now());
        Ok(())
    }

    async fn topics_matching(&self, regex: &regex::Regex) -> Result<BTreeSet<String>> {
        self.cluster.mark_stale();
        let snapshot = self.cluster.refresh(&[]).await?;
        Ok(snapshot
            .topic_names()
            .filter(|topic| !topic.starts_with("__") && regex.is_match(topic))
            .map(str::to_string)
            .collect())
    }

    fn start_subscription(
        &mut self,
        subscription: Subscription,
        topics: BTreeSet<String>,
    ) -> Result<()> {
        let settings = MembershipSettings {
            instance_id: self.config.group().group_instance_id.clone(),
            session_timeout: self.config.group().session_timeout,
            rebalance_timeout: self.config.group().max_poll_interval,
            max_poll_interval: self.config.group().max_poll_interval,
            assignor: self.config.group().assignor.clone(),
        };
        let was_assigned = self.group()?.subscription.is_none() && !self.positions.is_empty();
        if was_assigned {
            self.positions.clear();
            self.buffered.clear();
        }
        let group = self.group_mut()?;
        group.subscription = Some(subscription);
        match &group.membership {
            Some(membership) => membership.set_subscription(topics),
            None => {
                group.membership = Some(Membership::start(group.locator.clone(), topics, settings))
            }
        }
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit) and drops every partition.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.leave_group().await;
        if let Some(group) = self.group.as_mut() {
            group.subscription = None;
        }
        self.positions.clear();
        self.buffered.clear();
        Ok(())
    }

    async fn leave_group(&mut self) {
        if self.config.enable_auto_commit()
            && self.is_subscribed()
            && let Err(error) = self.commit().await
        {
            tracing::warn!(%error, "could not commit positions before leaving the group");
        }
        if let Some(membership) = self
            .group
            .as_mut()
            .and_then(|group| group.membership.take())
        {
            membership.leave().await;
        }
    }

    /// Commits (with auto-commit) and leaves the group at once, so the group rebalances now
    /// rather than after the session timeout. Dropping a consumer without `close` only stops
    /// its heartbeats.
    pub async fn close(mut self) -> Result<()> {
        if self.is_subscribed() {
            self.leave_group().await;
        } else if self.group.is_some() && self.config.enable_auto_commit() {
            self.commit().await?;
        }
        Ok(())
    }

    /// Changes to this consumer's assignment since the last call, oldest first.
    pub fn rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        self.group
            .as_mut()
            .map(|group| group.events.drain(..).collect())
            .unwrap_or_default()
    }

    /// Every known position as the offset to commit.
    fn positions_to_commit(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.positions
            .iter()
            .filter_map(|(topic_partition, position)| {
                position.map(|offset| (topic_partition.clone(), OffsetAndMetadata::new(offset)))
            })
            .collect()
    }

    /// Commits the position of every partition with one: the offset after the last record
    /// `poll` returned. Call it after processing a poll's records for at-least-once delivery
    /// (before processing, for at-most-once).
    pub async fn commit(&self) -> Result<()> {
        let offsets = self.positions_to_commit();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_offsets(offsets).await
    }

    /// Commits the given offsets (the next offset to read, not the last one read).
    pub async fn commit_offsets(
        &self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let group = self.group()?;
        let identity = match &group.membership {
            Some(membership) => Some(membership.commit_identity().ok_or_else(|| {
                Error::broker(
                    ErrorCode::UnknownMemberId,
                    "the consumer has not joined its group yet; poll first",
                )
            })?),
            None => None,
        };
        commit_with(
            &group.locator,
            identity,
            offsets,
            self.config.request_timeout(),
        )
        .await
    }

    /// Starts a commit of the current positions in the background; failures are logged (a
    /// later commit supersedes them).
    pub fn commit_async(&mut self) {
        let Some(group) = self.group.as_ref() else {
            return;
        };
        let offsets = self.positions_to_commit();
        let identity = match &group.membership {
            Some(membership) => match membership.commit_identity() {
                Some(identity) => Some(identity),
                None => return,
            },
            None => None,
        };
        if offsets.is_empty() {
            return;
        }
        let locator = group.locator.clone();
        let timeout = self.config.request_timeout();
        tokio::spawn(async move {
            if let Err(error) = commit_with(&locator, identity, offsets, timeout).await {
                tracing::warn!(%error, "asynchronous commit failed");
            }
        });
    }

    /// The group's committed offsets for `partitions` (`None` where it has none).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let group = self.group()?;
        let group_id = group.locator.group_id().to_string();
        let timeout = self.config.request_timeout();
        group
            .locator
            .call(timeout, |connection| {
                let group_id = group_id.clone();
                async move { grpc::offset_fetch(&connection, &group_id, partitions, timeout).await }
            })
            .await
    }

    /// One poll as a group member: apply assignment changes, auto-commit when due, then fetch.
    pub(super) async fn poll_as_member(&mut self, deadline: Instant) -> Result<()> {
        loop {
            self.group_mut()?
                .membership
                .as_ref()
                .expect("a subscribed consumer has a membership")
                .on_poll()?;
            self.refresh_pattern_subscription().await?;
            self.reconcile_assignment().await?;
            self.auto_commit_if_due();
            if self.has_buffered_records() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if self.positions.is_empty() {
                // Nothing to fetch until the coordinator assigns something.
                let membership = self
                    .group_mut()?
                    .membership
                    .as_mut()
                    .expect("a subscribed consumer has a membership");
                membership
                    .changed(
                        deadline
                            .saturating_duration_since(now)
                            .min(Duration::from_millis(500)),
                    )
                    .await;
                continue;
            }
            // Short rounds, so an assignment change is applied within a fetch wait.
            let round = deadline.min(now + self.config.fetch_max_wait());
            self.fill_buffer(round).await?;
        }
    }

    async fn refresh_pattern_subscription(&mut self) -> Result<()> {
        let group = self.group()?;
        let Some(Subscription::Pattern(regex)) = &group.subscription else {
            return Ok(());
        };
        if group
            .pattern_checked
            .is_some_and(|checked| checked.elapsed() < PATTERN_REFRESH)
        {
            return Ok(());
        }
        let regex = regex.clone();
        let topics = self.topics_matching(&regex).await?;
        let group = self.group_mut()?;
        group.pattern_checked = Some(Instant::now());
        if let Some(membership) = &group.membership {
            membership.set_subscription(topics);
        }
        Ok(())
    }

    /// Applies the coordinator's latest assignment: revoked partitions are committed (with
    /// auto-commit) and released, new ones start at the group's committed offsets, and the
    /// coordinator is told what the consumer now owns.
    async fn reconcile_assignment(&mut self) -> Result<()> {
        let view = {
            let group = self.group()?;
            group
                .membership
                .as_ref()
                .expect("a subscribed consumer has a membership")
                .view()
        };
        let owned: BTreeSet<TopicPartition> = self.positions.keys().cloned().collect();
        if view.fenced {
            self.positions.clear();
            self.buffered.clear();
            let group = self.group_mut()?;
            if !owned.is_empty() {
                group
                    .events
                    .push_back(RebalanceEvent::Lost(owned.into_iter().collect()));
            }
            group
                .membership
                .as_ref()
                .expect("membership")
                .report_owned(BTreeSet::new(), true);
            return Ok(());
        }
        if view.assignment == owned {
            return Ok(());
        }
        let revoked: Vec<TopicPartition> = owned.difference(&view.assignment).cloned().collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit() {
                let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = revoked
                    .iter()
                    .filter_map(|tp| {
                        let position = self.positions.get(tp).copied().flatten()?;
                        Some((tp.clone(), OffsetAndMetadata::new(position)))
                    })
                    .collect();
                if !offsets.is_empty() {
                    let group = self.group()?;
                    let identity = Some((view.member_id.clone(), view.member_epoch));
                    if let Err(error) = commit_with(
                        &group.locator,
                        identity,
                        offsets,
                        self.config.request_timeout(),
                    )
                    .await
                    {
                        // Not fatal: the next owner starts from the last successful commit, so
                        // records are redelivered, never skipped.
                        tracing::warn!(%error, "could not commit revoked partitions");
                    }
                }
            }
            for topic_partition in &revoked {
                self.positions.remove(topic_partition);
            }
            self.buffered
                .retain(|fetched| !revoked.contains(&fetched.topic_partition));
            self.group_mut()?
                .events
                .push_back(RebalanceEvent::Revoked(revoked));
        }
        let assigned: Vec<TopicPartition> = view.assignment.difference(&owned).cloned().collect();
        if !assigned.is_empty() {
            let committed = self.committed(&assigned).await?;
            for topic_partition in &assigned {
                let offset = committed
                    .get(topic_partition)
                    .cloned()
                    .flatten()
                    .map(|committed| committed.offset);
                self.positions.insert(topic_partition.clone(), offset);
            }
            self.group_mut()?
                .events
                .push_back(RebalanceEvent::Assigned(assigned));
        }
        let owned: BTreeSet<TopicPartition> = self.positions.keys().cloned().collect();
        self.group()?
            .membership
            .as_ref()
            .expect("membership")
            .report_owned(owned, false);
        Ok(())
    }

    fn auto_commit_if_due(&mut self) {
        if !self.config.enable_auto_commit() {
            return;
        }
        let interval = self.config.group().auto_commit_interval;
        let Some(group) = self.group.as_mut() else {
            return;
        };
        if group.last_auto_commit.elapsed() < interval {
            return;
        }
        group.last_auto_commit = Instant::now();
        self.commit_async();
    }
}

/// Sends a commit to the group's coordinator; fails with the first partition's error.
async fn commit_with(
    locator: &CoordinatorLocator,
    identity: Option<(String, i32)>,
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    timeout: Duration,
) -> Result<()> {
    let group_id = locator.group_id().to_string();
    let answers = locator
        .call(timeout, |connection| {
            let (group_id, identity, offsets) = (group_id.clone(), identity.clone(), &offsets);
            async move {
                let member = identity
                    .as_ref()
                    .map(|(member_id, epoch)| (member_id.as_str(), *epoch));
                let answers =
                    grpc::offset_commit(&connection, &group_id, member, offsets, timeout).await?;
                // A whole-commit coordinator error is retried like a failed request.
                if let Some((_, Err(error))) = answers.first()
                    && answers.iter().all(|(_, answer)| answer.is_err())
                    && error.is_retriable()
                {
                    return Err(error.clone());
                }
                Ok(answers)
            }
        })
        .await?;
    for (_, answer) in answers {
        answer?;
    }
    Ok(())
}
