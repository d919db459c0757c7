//! The console's routes: one handler per page, each asking the cluster what it shows and handing
//! it to its template. Forms post, then redirect to the page they changed with a one-line
//! `flash` saying what happened (post/redirect/get, so a reload never repeats a change).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use strata_client::{
    AutoOffsetReset, Consumer, ConsumerConfig, NewTopic, PartitionLog, TopicDescription,
    TopicPartition,
};

use super::show::{Binary, ShownRecord};
use super::{Console, PageError, Session, Signed, render};
use crate::dlq;
use crate::tls::ConnectTo;

pub(super) fn router() -> Router<Console> {
    Router::new()
        .route("/", get(overview))
        .route("/topics", get(topics).post(create_topic))
        .route("/topics/new", get(new_topic))
        .route("/topics/{name}", get(topic))
        .route("/topics/{name}/configs", post(alter_config))
        .route("/topics/{name}/records", get(records))
        .route("/groups", get(groups))
        .route("/groups/{id}", get(group))
        .route("/share-groups/{id}", get(share_group))
        .route("/dlq", get(dead_letter_topics))
        .route("/dlq/{topic}", get(dead_letter_topic))
        .route("/dlq/{topic}/redrive", post(redrive))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/api/topics/{name}/offsets", get(topic_offsets))
        .route("/api/groups/{id}/lag", get(group_lag))
        .route(
            "/static/console.css",
            get(|| async { static_file("text/css", include_str!("console.css")) }),
        )
        .route(
            "/static/console.js",
            get(|| async { static_file("text/javascript", include_str!("console.js")) }),
        )
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `text` safe in a query string or a path segment.
pub(super) fn query_escape(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

/// `path`, with `flash` said on arrival.
fn redirect_with_flash(path: &str, flash: &str) -> Response {
    Redirect::to(&format!("{path}?flash={}", query_escape(flash))).into_response()
}

/// What every page carries around its content: who is signed in, and the flash.
pub(super) struct Chrome {
    pub user: Option<String>,
    pub sign_in_required: bool,
    pub flash: Option<String>,
    /// The navigation entry to highlight.
    pub section: &'static str,
}

impl Chrome {
    fn of(session: &Session, flash: FlashQuery, section: &'static str) -> Chrome {
        Chrome {
            user: session.user.clone(),
            sign_in_required: session.user.is_some(),
            flash: flash.flash.filter(|flash| !flash.is_empty()),
            section,
        }
    }

    /// For pages shown before anyone signed in.
    pub(super) fn bare(sign_in_required: bool) -> Chrome {
        Chrome {
            user: None,
            sign_in_required,
            flash: None,
            section: "",
        }
    }
}

#[derive(Deserialize, Default)]
struct FlashQuery {
    flash: Option<String>,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub(super) struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

// ---- overview -------------------------------------------------------------------------------

struct BrokerRow {
    node_id: i32,
    address: String,
    fenced: bool,
    controller: bool,
    leaderships: usize,
    offline_log_dirs: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    chrome: Chrome,
    cluster_id: String,
    controller: String,
    brokers: Vec<BrokerRow>,
    topics: usize,
    partitions: usize,
    under_replicated: usize,
    offline: usize,
}

async fn overview(
    Signed(session): Signed,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let admin = &session.admin;
    let cluster = admin.describe_cluster().await?;
    let topics = admin.describe_topics().await?;
    let partitions = topics.iter().flat_map(|topic| &topic.partitions);
    let brokers = cluster
        .brokers
        .iter()
        .map(|broker| BrokerRow {
            node_id: broker.node_id,
            address: broker.address.clone(),
            fenced: broker.fenced,
            controller: cluster.controller_id == Some(broker.node_id),
            leaderships: partitions
                .clone()
                .filter(|p| p.leader == Some(broker.node_id))
                .count(),
            offline_log_dirs: broker.offline_log_dirs.join(", "),
        })
        .collect();
    Ok(render(&Overview {
        chrome: Chrome::of(&session, flash, "overview"),
        cluster_id: cluster.cluster_id,
        controller: cluster
            .controller_id
            .map_or_else(|| "none (no quorum)".to_string(), |id| format!("node {id}")),
        brokers,
        topics: topics.len(),
        partitions: partitions.clone().count(),
        under_replicated: partitions
            .clone()
            .filter(|p| p.isr.len() < p.replicas.len())
            .count(),
        offline: partitions.filter(|p| p.leader.is_none()).count(),
    }))
}

// ---- topics ---------------------------------------------------------------------------------

struct TopicRow {
    name: String,
    partitions: usize,
    replication_factor: usize,
    under_replicated: usize,
    offline: usize,
    records: String,
    size: String,
}

#[derive(Template)]
#[template(path = "console/topics.html")]
struct Topics {
    chrome: Chrome,
    topics: Vec<TopicRow>,
}

/// Each partition's log, or `None` when a leader cannot say (an offline partition): the page
/// then shows what it knows without the counts rather than fail.
async fn partition_logs(
    session: &Session,
    topics: &[TopicDescription],
) -> Option<BTreeMap<TopicPartition, PartitionLog>> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| TopicPartition::new(topic.name.as_str(), p.partition))
        })
        .collect();
    session
        .admin
        .describe_partition_logs(&partitions)
        .await
        .ok()
}

fn bytes(size: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

async fn topics(
    Signed(session): Signed,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let described = session.admin.describe_topics().await?;
    let logs = partition_logs(&session, &described).await;
    let topics = described
        .iter()
        .map(|topic| {
            let of_topic = |tp: &&TopicPartition| tp.topic == topic.name;
            let counted = logs.as_ref().map(|logs| {
                logs.iter().filter(|(tp, _)| of_topic(tp)).fold(
                    (0, 0),
                    |(records, size), (_, log)| {
                        (
                            records + (log.high_watermark - log.log_start_offset),
                            size + log.size_bytes.unwrap_or(0),
                        )
                    },
                )
            });
            TopicRow {
                name: topic.name.clone(),
                partitions: topic.partitions.len(),
                replication_factor: topic.partitions.first().map_or(0, |p| p.replicas.len()),
                under_replicated: topic
                    .partitions
                    .iter()
                    .filter(|p| p.isr.len() < p.replicas.len())
                    .count(),
                offline: topic
                    .partitions
                    .iter()
                    .filter(|p| p.leader.is_none())
                    .count(),
                records: counted
                    .map_or_else(|| "?".to_string(), |(records, _)| records.to_string()),
                size: counted.map_or_else(|| "?".to_string(), |(_, size)| bytes(size)),
            }
        })
        .collect();
    Ok(render(&Topics {
        chrome: Chrome::of(&session, flash, "topics"),
        topics,
    }))
}

struct PartitionRow {
    partition: i32,
    leader: String,
    leader_epoch: i32,
    replicas: String,
    isr: String,
    under_replicated: bool,
    log_start: String,
    high_watermark: String,
    size: String,
}

struct ConfigRow {
    name: String,
    value: String,
    is_default: bool,
}

#[derive(Template)]
#[template(path = "console/topic.html")]
struct TopicPage {
    chrome: Chrome,
    name: String,
    partitions: Vec<PartitionRow>,
    configs: Vec<ConfigRow>,
}

fn ids(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

async fn topic(
    Signed(session): Signed,
    Path(name): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let admin = &session.admin;
    let described = admin.describe_topic(&name).await?;
    let logs = partition_logs(&session, std::slice::from_ref(&described)).await;
    let configs = admin.describe_configs(&name).await?;
    let partitions = described
        .partitions
        .iter()
        .map(|p| {
            let log = logs
                .as_ref()
                .and_then(|logs| logs.get(&TopicPartition::new(name.as_str(), p.partition)));
            let or_unknown = |value: Option<String>| value.unwrap_or_else(|| "?".to_string());
            PartitionRow {
                partition: p.partition,
                leader: p
                    .leader
                    .map_or_else(|| "none".to_string(), |id| id.to_string()),
                leader_epoch: p.leader_epoch,
                replicas: ids(&p.replicas),
                isr: ids(&p.isr),
                under_replicated: p.isr.len() < p.replicas.len(),
                log_start: or_unknown(log.map(|log| log.log_start_offset.to_string())),
                high_watermark: or_unknown(log.map(|log| log.high_watermark.to_string())),
                size: or_unknown(log.and_then(|log| log.size_bytes).map(bytes)),
            }
        })
        .collect();
    Ok(render(&TopicPage {
        chrome: Chrome::of(&session, flash, "topics"),
        name,
        partitions,
        configs: configs
            .into_iter()
            .map(|entry| ConfigRow {
                name: entry.name,
                value: entry.value,
                is_default: entry.is_default,
            })
            .collect(),
    }))
}

#[derive(Deserialize, Default)]
struct NewTopicForm {
    name: String,
    partitions: String,
    replication_factor: String,
    configs: String,
}

#[derive(Template)]
#[template(path = "console/new_topic.html")]
struct NewTopicPage {
    chrome: Chrome,
    form: NewTopicForm,
    error: Option<String>,
}

async fn new_topic(Signed(session): Signed) -> Response {
    render(&NewTopicPage {
        chrome: Chrome::of(&session, FlashQuery::default(), "topics"),
        form: NewTopicForm {
            partitions: "3".to_string(),
            replication_factor: "3".to_string(),
            ..NewTopicForm::default()
        },
        error: None,
    })
}

impl NewTopicForm {
    fn parse(&self) -> Result<NewTopic, String> {
        let count = |field: &str, text: &str| -> Result<i32, String> {
            text.trim()
                .parse::<i32>()
                .ok()
                .filter(|count| *count > 0)
                .ok_or_else(|| format!("{field} must be a whole number above 0, not '{text}'"))
        };
        let name = self.name.trim();
        if name.is_empty() {
            return Err("a topic needs a name".to_string());
        }
        let mut topic = NewTopic::new(
            name,
            count("partitions", &self.partitions)?,
            count("replication factor", &self.replication_factor)?,
        );
        for line in self.configs.lines().filter(|line| !line.trim().is_empty()) {
            let (key, value) = crate::topic::parse_config(line.trim())?;
            topic = topic.config(key, value);
        }
        Ok(topic)
    }
}

async fn create_topic(Signed(session): Signed, Form(form): Form<NewTopicForm>) -> Response {
    let failed = |status: StatusCode, error: String, form: NewTopicForm| {
        let page = NewTopicPage {
            chrome: Chrome::of(&session, FlashQuery::default(), "topics"),
            form,
            error: Some(error),
        };
        (status, render(&page)).into_response()
    };
    let topic = match form.parse() {
        Ok(topic) => topic,
        Err(error) => return failed(StatusCode::BAD_REQUEST, error, form),
    };
    let name = topic.name.clone();
    match session.admin.create_topic(topic).await {
        Ok(()) => redirect_with_flash(
            &format!("/topics/{}", query_escape(&name)),
            &format!("created topic {name}"),
        ),
        Err(error) => {
            let error = PageError::from(error);
            failed(error.status, error.message, form)
        }
    }
}

#[derive(Deserialize)]
struct AlterConfigForm {
    key: String,
    value: String,
}

/// Sets one config of a topic, or returns it to its default when the value is empty.
async fn alter_config(
    Signed(session): Signed,
    Path(name): Path<String>,
    Form(form): Form<AlterConfigForm>,
) -> Result<Response, PageError> {
    let key = form.key.trim();
    if key.is_empty() {
        return Err(PageError::bad_request("name the config to change"));
    }
    let (set, delete, said) = if form.value.is_empty() {
        (
            BTreeMap::new(),
            vec![key.to_string()],
            format!("returned {key} to its default"),
        )
    } else {
        (
            BTreeMap::from([(key.to_string(), form.value.clone())]),
            Vec::new(),
            format!("set {key} to {}", form.value),
        )
    };
    session.admin.alter_configs(&name, &set, &delete).await?;
    Ok(redirect_with_flash(
        &format!("/topics/{}", query_escape(&name)),
        &said,
    ))
}

// ---- record browser -------------------------------------------------------------------------

/// Records one browse shows at most.
const MAX_BROWSE: u64 = 500;
/// Record bytes one browse reads at most (one fetch's worth), so a page of large records stays
/// a page.
const BROWSE_BYTES: i32 = 4 * 1024 * 1024;
/// How long a browse reads before it shows what it has.
const BROWSE_TIME: Duration = Duration::from_secs(5);

#[derive(Deserialize, Default)]
struct BrowseQuery {
    partition: Option<String>,
    offset: Option<String>,
    timestamp: Option<String>,
    limit: Option<String>,
    binary: Option<Binary>,
}

/// Where a browse starts.
enum Start {
    /// The newest records: `limit` before the high watermark.
    Newest,
    Offset(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

struct Browse {
    partition: i32,
    start: Start,
    limit: u64,
    binary: Binary,
}

/// An input of the browse form: `None` when left empty.
fn field<T: std::str::FromStr>(text: &Option<String>, what: &str) -> Result<Option<T>, PageError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| PageError::bad_request(format!("{what} '{text}' is not a number"))),
    }
}

impl BrowseQuery {
    fn parse(&self) -> Result<Browse, PageError> {
        let start = match (
            field::<i64>(&self.offset, "offset")?,
            self.timestamp.as_deref().map(str::trim),
        ) {
            (Some(offset), _) => Start::Offset(offset),
            (None, None | Some("")) => Start::Newest,
            (None, Some(text)) => Start::Timestamp(parse_timestamp(text)?),
        };
        Ok(Browse {
            partition: field(&self.partition, "partition")?.unwrap_or(0),
            start,
            limit: field::<u64>(&self.limit, "limit")?
                .unwrap_or(20)
                .clamp(1, MAX_BROWSE),
            binary: self.binary.unwrap_or_default(),
        })
    }
}

/// Milliseconds since the epoch, or an RFC 3339 date (`2026-12-06T10:00:00Z`).
fn parse_timestamp(text: &str) -> Result<i64, PageError> {
    if let Ok(millis) = text.parse::<i64>() {
        return Ok(millis);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|error| {
        PageError::bad_request(format!(
            "timestamp '{text}' is neither milliseconds nor a date like \
             2026-12-06T10:00:00Z: {error}"
        ))
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| PageError::bad_request(format!("timestamp '{text}' is before 1970")))?;
    Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Template)]
#[template(path = "console/records.html")]
struct RecordsPage {
    chrome: Chrome,
    topic: String,
    partitions: Vec<i32>,
    partition: i32,
    offset: String,
    timestamp: String,
    limit: u64,
    binary: &'static str,
    records: Vec<ShownRecord>,
    log_start: i64,
    high_watermark: i64,
    /// Why fewer records than asked were shown, if the browse stopped early.
    note: Option<String>,
}

async fn records(
    Signed(session): Signed,
    Path(topic): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Result<Response, PageError> {
    let browse = query.parse()?;
    let described = session.admin.describe_topic(&topic).await?;
    let partitions: Vec<i32> = described.partitions.iter().map(|p| p.partition).collect();
    if !partitions.contains(&browse.partition) {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!(
                "topic {topic} has no partition {}; it has {}",
                browse.partition,
                partitions.len()
            ),
        ));
    }
    let topic_partition = TopicPartition::new(topic.as_str(), browse.partition);
    let log = session
        .admin
        .describe_partition_logs(std::slice::from_ref(&topic_partition))
        .await?
        .remove(&topic_partition)
        .ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the leader of {topic_partition} did not say where its log starts and ends"
                ),
            )
        })?;
    let (records, note) = read_records(&session, &topic_partition, &browse, log).await?;
    Ok(render(&RecordsPage {
        chrome: Chrome::of(&session, FlashQuery::default(), "topics"),
        topic,
        partitions,
        partition: browse.partition,
        offset: query.offset.unwrap_or_default(),
        timestamp: query.timestamp.unwrap_or_default(),
        limit: browse.limit,
        binary: browse.binary.name(),
        records: records
            .iter()
            .map(|record| ShownRecord::new(record, browse.binary))
            .collect(),
        log_start: log.log_start_offset,
        high_watermark: log.high_watermark,
        note,
    }))
}

/// Reads up to `browse.limit` records from where `browse` starts, stopping at the high
/// watermark as it was, or after [`BROWSE_TIME`].
async fn read_records(
    session: &Session,
    topic_partition: &TopicPartition,
    browse: &Browse,
    log: PartitionLog,
) -> Result<(Vec<strata_client::ConsumerRecord>, Option<String>), PageError> {
    let mut consumer = Consumer::connect(
        ConsumerConfig::builder()
            .aimed_at(&session.target)
            .auto_offset_reset(AutoOffsetReset::Earliest)
            .fetch_max_bytes(BROWSE_BYTES)
            .max_partition_fetch_bytes(BROWSE_BYTES)
            .build()?,
    )
    .await?;
    consumer.assign(vec![topic_partition.clone()])?;
    let limit = i64::try_from(browse.limit).unwrap_or(i64::MAX);
    match browse.start {
        Start::Newest => {
            let from = (log.high_watermark - limit).max(log.log_start_offset);
            consumer.seek(topic_partition, from)
        }
        // Below the log start, the reset to earliest starts at the oldest record kept.
        Start::Offset(offset) => consumer.seek(topic_partition, offset.max(0)),
        Start::Timestamp(millis) => {
            consumer
                .seek_to_timestamp(std::slice::from_ref(topic_partition), millis)
                .await
        }
    }?;
    let deadline = Instant::now() + BROWSE_TIME;
    let mut records: Vec<strata_client::ConsumerRecord> = Vec::new();
    let mut bytes = 0;
    loop {
        if records.len() as u64 >= browse.limit {
            return Ok((records, None));
        }
        if bytes >= BROWSE_BYTES as usize {
            return Ok((
                records,
                Some(format!(
                    "stopped after {} MiB of records; start further on for more",
                    BROWSE_BYTES / (1024 * 1024)
                )),
            ));
        }
        let position = consumer.position(topic_partition).await?;
        if position >= log.high_watermark {
            let note = (records.len() as u64) < browse.limit;
            return Ok((
                records,
                note.then(|| "reached the end of the partition".to_string()),
            ));
        }
        if Instant::now() > deadline {
            return Ok((
                records,
                Some(format!(
                    "stopped after {} s; showing what arrived",
                    BROWSE_TIME.as_secs()
                )),
            ));
        }
        for record in consumer.poll(Duration::from_millis(200)).await? {
            if (records.len() as u64) < browse.limit && record.offset < log.high_watermark {
                bytes += record.key.as_ref().map_or(0, |key| key.len())
                    + record.value.as_ref().map_or(0, |value| value.len());
                records.push(record);
            }
        }
    }
}

// ---- groups ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/groups.html")]
struct Groups {
    chrome: Chrome,
    groups: Vec<strata_client::GroupListing>,
}

async fn groups(
    Signed(session): Signed,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let mut groups = session.admin.list_groups().await?;
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(render(&Groups {
        chrome: Chrome::of(&session, flash, "groups"),
        groups,
    }))
}

struct MemberRow {
    member_id: String,
    instance_id: String,
    epoch: i32,
    subscribed: String,
    assignment: String,
}

struct LagRow {
    topic: String,
    partition: i32,
    committed: String,
    end: String,
    lag: String,
    member: String,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage {
    chrome: Chrome,
    group_id: String,
    state: String,
    coordinator: i32,
    assignor: String,
    members: Vec<MemberRow>,
    lag: Vec<LagRow>,
    total_lag: i64,
}

fn partitions_text(partitions: &BTreeSet<TopicPartition>) -> String {
    partitions
        .iter()
        .map(|tp| format!("{}-{}", tp.topic, tp.partition))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn group(
    Signed(session): Signed,
    Path(id): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let described = session.admin.describe_group(&id).await?;
    let lag = session.admin.group_lag(&id).await?;
    let or_dash = |value: Option<i64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    Ok(render(&GroupPage {
        chrome: Chrome::of(&session, flash, "groups"),
        group_id: described.group_id,
        state: described.state,
        coordinator: described.coordinator_id,
        assignor: described.assignor,
        members: described
            .members
            .iter()
            .map(|member| MemberRow {
                member_id: member.member_id.clone(),
                instance_id: member.group_instance_id.clone().unwrap_or_default(),
                epoch: member.member_epoch,
                subscribed: member.subscribed_topics.join(", "),
                assignment: partitions_text(&member.assignment),
            })
            .collect(),
        total_lag: lag.iter().filter_map(|row| row.lag).sum(),
        lag: lag
            .into_iter()
            .map(|row| LagRow {
                topic: row.topic_partition.topic.to_string(),
                partition: row.topic_partition.partition,
                committed: or_dash(row.committed),
                end: or_dash(row.log_end_offset),
                lag: or_dash(row.lag),
                member: row.member_id.unwrap_or_default(),
            })
            .collect(),
    }))
}

#[derive(Template)]
#[template(path = "console/share_group.html")]
struct ShareGroupPage {
    chrome: Chrome,
    group: strata_client::ShareGroupDescription,
    dead_letter_topics: Vec<String>,
}

async fn share_group(
    Signed(session): Signed,
    Path(id): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let group = session.admin.describe_share_group(&id).await?;
    let dead_letter_topics = group
        .partitions
        .iter()
        .map(|p| format!("{}.dlq", p.topic_partition.topic))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(render(&ShareGroupPage {
        chrome: Chrome::of(&session, flash, "groups"),
        group,
        dead_letter_topics,
    }))
}

// ---- dead-letter topics ---------------------------------------------------------------------

/// Parked records one peek shows at most.
const PEEK: u64 = 100;

#[derive(Template)]
#[template(path = "console/dlqs.html")]
struct DeadLetterTopics {
    chrome: Chrome,
    topics: Vec<dlq::DeadLetterTopic>,
}

async fn dead_letter_topics(
    Signed(session): Signed,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let topics = dlq::list(&session.admin).await?;
    Ok(render(&DeadLetterTopics {
        chrome: Chrome::of(&session, flash, "dlq"),
        topics,
    }))
}

#[derive(Template)]
#[template(path = "console/dlq.html")]
struct DeadLetterTopicPage {
    chrome: Chrome,
    topic: String,
    parked: Vec<ShownRecord>,
    limit: u64,
}

async fn dead_letter_topic(
    Signed(session): Signed,
    Path(topic): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Result<Response, PageError> {
    let parked = dlq::peek(&session.admin, &session.target, &topic, PEEK).await?;
    Ok(render(&DeadLetterTopicPage {
        chrome: Chrome::of(&session, flash, "dlq"),
        topic,
        parked: parked
            .iter()
            .map(|record| ShownRecord::new(record, Binary::Hex))
            .collect(),
        limit: PEEK,
    }))
}

#[derive(Deserialize)]
struct RedriveForm {
    /// Where to send the records instead of each one's source topic; empty for the source.
    #[serde(default)]
    to: String,
}

async fn redrive(
    Signed(session): Signed,
    Path(topic): Path<String>,
    Form(form): Form<RedriveForm>,
) -> Result<Response, PageError> {
    let to = Some(form.to.trim()).filter(|to| !to.is_empty());
    let redriven = dlq::redrive(&session.admin, &session.target, &topic, to, None).await?;
    let destination = to.map_or_else(|| "their source topics".to_string(), |to| to.to_string());
    Ok(redirect_with_flash(
        &format!("/dlq/{}", query_escape(&topic)),
        &format!("redrove {redriven} record(s) to {destination}"),
    ))
}

// ---- signing in -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    user: String,
    error: Option<String>,
}

/// `next` if it is a path of this console; anything else (another site) becomes `/`.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next
        }
        _ => "/",
    }
}

async fn login_page(State(console): State<Console>, Query(query): Query<LoginQuery>) -> Response {
    if !console.inner.sign_in_required {
        return Redirect::to("/").into_response();
    }
    render(&LoginPage {
        chrome: Chrome::bare(true),
        next: local_path(query.next.as_deref()).to_string(),
        user: String::new(),
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(console): State<Console>,
    extensions: axum::http::Extensions,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(Some(&form.next)).to_string();
    // The listener records each connection's peer (`http_admin::serve`).
    let from = extensions
        .get::<axum::extract::ConnectInfo<strata_broker::HttpPeer>>()
        .map(|info| info.0.0.ip());
    match console
        .sign_in(from, form.user.trim(), &form.password)
        .await
    {
        Ok(token) => {
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                super::SESSION_COOKIE,
                super::SESSION_LIFETIME.as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(error) => {
            tracing::info!(user = %form.user.trim(), error = %error.message, "console sign-in failed");
            let page = LoginPage {
                chrome: Chrome::bare(true),
                next,
                user: form.user,
                error: Some(error.message),
            };
            (error.status, render(&page)).into_response()
        }
    }
}

async fn logout(State(console): State<Console>, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Some(token) = super::session_cookie(&parts) {
        console.sign_out(token);
    }
    let expired = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        super::SESSION_COOKIE
    );
    ([(header::SET_COOKIE, expired)], Redirect::to("/login")).into_response()
}

// ---- what the sparklines poll ---------------------------------------------------------------

fn json(document: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

/// The sum of the topic's high watermarks: its throughput is how fast this grows.
async fn topic_offsets(
    Signed(session): Signed,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let described = session.admin.describe_topic(&name).await?;
    let partitions: Vec<TopicPartition> = described
        .partitions
        .iter()
        .map(|p| TopicPartition::new(name.as_str(), p.partition))
        .collect();
    let logs = session.admin.describe_partition_logs(&partitions).await?;
    let end: i64 = logs.values().map(|log| log.high_watermark).sum();
    Ok(json(serde_json::json!({ "end": end })))
}

async fn group_lag(Signed(session): Signed, Path(id): Path<String>) -> Result<Response, PageError> {
    let lag = session.admin.group_lag(&id).await?;
    let total: i64 = lag.iter().filter_map(|row| row.lag).sum();
    Ok(json(serde_json::json!({ "lag": total })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_this_console() {
        assert_eq!(local_path(Some("/topics/orders?x=1")), "/topics/orders?x=1");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_create_form_says_what_is_wrong() {
        let form = |partitions: &str, configs: &str| NewTopicForm {
            name: "orders".to_string(),
            partitions: partitions.to_string(),
            replication_factor: "3".to_string(),
            configs: configs.to_string(),
        };
        let topic = form("6", "retention.ms=1000\n\n cleanup.policy=delete ")
            .parse()
            .unwrap();
        assert_eq!(topic.partitions, 6);
        assert_eq!(topic.configs["retention.ms"], "1000");
        assert_eq!(topic.configs["cleanup.policy"], "delete");
        assert!(form("0", "").parse().unwrap_err().contains("partitions"));
        assert!(form("x", "").parse().unwrap_err().contains("'x'"));
        assert!(
            form("1", "retention")
                .parse()
                .unwrap_err()
                .contains("KEY=VALUE")
        );
    }

    #[test]
    fn browse_inputs_are_read_or_refused() {
        let query = |offset: &str, timestamp: &str| BrowseQuery {
            partition: Some("2".to_string()),
            offset: Some(offset.to_string()),
            timestamp: Some(timestamp.to_string()),
            limit: Some("100000".to_string()),
            binary: None,
        };
        let browse = query("7", "").parse().unwrap();
        assert!(matches!(browse.start, Start::Offset(7)));
        assert_eq!((browse.partition, browse.limit), (2, MAX_BROWSE));
        assert!(matches!(
            query("", "").parse().unwrap().start,
            Start::Newest
        ));
        assert!(matches!(
            query("", "1970-01-01T00:00:01Z").parse().unwrap().start,
            Start::Timestamp(1000)
        ));
        assert!(query("seven", "").parse().is_err());
        assert!(query("", "yesterday").parse().is_err());
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
