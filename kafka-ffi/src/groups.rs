//! Consumer-group admin calls that rust-rdkafka's `AdminClient` lacks:
//! listing and describing groups, and listing, altering and deleting their
//! committed offsets.
//!
//! librdkafka implements all five; this module drives them through the raw
//! bindings that rust-rdkafka re-exports (`rdkafka::bindings`). Every call
//! gets its own result queue, issues its request(s), and then polls that
//! queue without blocking (a zero-timeout poll, then a short tokio sleep),
//! so the futures never tie up a runtime worker thread.
//!
//! Everything librdkafka allocates for us is held by a small RAII guard
//! whose `Drop` calls the matching destroy function, so an early return, a
//! `?` or a dropped (cancelled) future frees it exactly once. Results are
//! borrowed from their event, so they are copied into owned Rust values
//! before the event is destroyed.
//!
//! Error codes, group states and group types come out of librdkafka as C
//! enums that may hold values the Rust binding enums do not list (broker
//! error codes pass straight through, and Kafka keeps adding them). Turning
//! such a value into a Rust enum would be undefined behaviour, so this
//! module reads them as plain integers: the few functions that return them
//! are declared again below with integer return types, and struct fields
//! of that type are read through a raw pointer cast to `i32`.
//!
//! Together with [`crate::process`], this crate holds all of the
//! workspace's `unsafe` code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};

/// A client the committed-offsets calls can run on.
///
/// librdkafka runs admin calls on any client, but ListConsumerGroupOffsets
/// on one without a consumer group crashes the process when the group's
/// coordinator answers NOT_COORDINATOR, as it does while a coordinator
/// moves after a broker dies: the answer's handler asks the client's own
/// group to look its coordinator up again, and an admin client has none
/// (a null dereference, librdkafka issue 5040, open in 2.12). A consumer
/// with a `group.id` has one, which then only looks up its own coordinator.
/// So these calls take a consumer; [`AdminClient`] stays accepted for the
/// tests and calls that do not care.
///
/// Sealed: the calls trust the handle it gives to be a live client.
pub trait OffsetsClient: sealed::Sealed {
    fn handle(&self) -> *mut rd::rd_kafka_t;
}

mod sealed {
    pub trait Sealed {}
    impl<C: rdkafka::client::ClientContext> Sealed for rdkafka::admin::AdminClient<C> {}
    impl<C: rdkafka::consumer::ConsumerContext> Sealed for rdkafka::consumer::BaseConsumer<C> {}
    impl<T: Sealed> Sealed for std::sync::Arc<T> {}
}

impl<T: OffsetsClient> OffsetsClient for std::sync::Arc<T> {
    fn handle(&self) -> *mut rd::rd_kafka_t {
        (**self).handle()
    }
}

impl<C: ClientContext> OffsetsClient for AdminClient<C> {
    fn handle(&self) -> *mut rd::rd_kafka_t {
        self.inner().native_ptr()
    }
}

impl<C: ConsumerContext> OffsetsClient for BaseConsumer<C> {
    fn handle(&self) -> *mut rd::rd_kafka_t {
        self.client().native_ptr()
    }
}

/// How often a call looks at its result queue while it waits.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How long past the request timeout a call waits for librdkafka's own
/// timeout result before it gives up by itself.
const GRACE: Duration = Duration::from_secs(1);

/// The largest request timeout librdkafka accepts, in milliseconds.
const MAX_REQUEST_TIMEOUT_MS: u128 = 3_600_000;

/// What librdkafka reports for a partition without a committed offset.
const OFFSET_INVALID: i64 = rd::RD_KAFKA_OFFSET_INVALID as i64;

// The functions below return C enums (`rd_kafka_resp_err_t`,
// `rd_kafka_consumer_group_state_t`, `rd_kafka_consumer_group_type_t`).
// rdkafka-sys declares them with Rust enum return types, which is undefined
// behaviour the moment librdkafka returns a value the Rust enum lacks (an
// error code a newer broker sends, say). These declarations name the same
// symbols with `c_int` return types: a C enum is passed exactly as an `int`,
// so the ABI is identical, and any value is a valid `c_int`.
unsafe extern "C" {
    #[link_name = "rd_kafka_error_code"]
    fn rd_kafka_error_code_raw(error: *const rd::rd_kafka_error_t) -> c_int;
    #[link_name = "rd_kafka_event_error"]
    fn rd_kafka_event_error_raw(rkev: *mut rd::rd_kafka_event_t) -> c_int;
    #[link_name = "rd_kafka_ConsumerGroupListing_state"]
    fn rd_kafka_ConsumerGroupListing_state_raw(
        grplist: *const rd::rd_kafka_ConsumerGroupListing_t,
    ) -> c_int;
    #[link_name = "rd_kafka_ConsumerGroupListing_type"]
    fn rd_kafka_ConsumerGroupListing_type_raw(
        grplist: *const rd::rd_kafka_ConsumerGroupListing_t,
    ) -> c_int;
    #[link_name = "rd_kafka_ConsumerGroupDescription_state"]
    fn rd_kafka_ConsumerGroupDescription_state_raw(
        grpdesc: *const rd::rd_kafka_ConsumerGroupDescription_t,
    ) -> c_int;
    #[link_name = "rd_kafka_ConsumerGroupDescription_type"]
    fn rd_kafka_ConsumerGroupDescription_type_raw(
        grpdesc: *const rd::rd_kafka_ConsumerGroupDescription_t,
    ) -> c_int;
}

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// A consumer group's state, as Kafka names it.
///
/// librdkafka 2.12 knows only the classic protocol's states; the states of
/// KIP-848 (`consumer` protocol) groups that it does not know, `Assigning`
/// and `Reconciling`, come back from the brokers as [`GroupState::Unknown`].
/// They exist here so that [`GroupState::parse`] accepts every name Kafka
/// uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum GroupState {
    Unknown,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
    Empty,
    Assigning,
    Reconciling,
}

impl GroupState {
    /// The name Kafka's own tools print.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Unknown => "Unknown",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
        }
    }

    /// Reads a state name in any case, with or without `-`, `_` or spaces
    /// between its words: `Stable`, `preparing-rebalance`,
    /// `COMPLETING_REBALANCE`.
    pub fn parse(s: &str) -> Option<Self> {
        let key: String = s
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        Some(match key.as_str() {
            "unknown" => GroupState::Unknown,
            "preparingrebalance" => GroupState::PreparingRebalance,
            "completingrebalance" => GroupState::CompletingRebalance,
            "stable" => GroupState::Stable,
            "dead" => GroupState::Dead,
            "empty" => GroupState::Empty,
            "assigning" => GroupState::Assigning,
            "reconciling" => GroupState::Reconciling,
            _ => return None,
        })
    }

    fn from_raw(raw: c_int) -> Self {
        use rd::rd_kafka_consumer_group_state_t as S;
        match raw {
            r if r == S::RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE as c_int => {
                GroupState::PreparingRebalance
            }
            r if r == S::RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE as c_int => {
                GroupState::CompletingRebalance
            }
            r if r == S::RD_KAFKA_CONSUMER_GROUP_STATE_STABLE as c_int => GroupState::Stable,
            r if r == S::RD_KAFKA_CONSUMER_GROUP_STATE_DEAD as c_int => GroupState::Dead,
            r if r == S::RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY as c_int => GroupState::Empty,
            _ => GroupState::Unknown,
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which rebalance protocol a group uses: `Classic` (the original one) or
/// `Consumer` (KIP-848).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum GroupType {
    Unknown,
    Classic,
    Consumer,
}

impl GroupType {
    /// The name Kafka's own tools print.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Unknown => "Unknown",
            GroupType::Classic => "Classic",
            GroupType::Consumer => "Consumer",
        }
    }

    fn from_raw(raw: c_int) -> Self {
        use rd::rd_kafka_consumer_group_type_t as T;
        match raw {
            r if r == T::RD_KAFKA_CONSUMER_GROUP_TYPE_CLASSIC as c_int => GroupType::Classic,
            r if r == T::RD_KAFKA_CONSUMER_GROUP_TYPE_CONSUMER as c_int => GroupType::Consumer,
            _ => GroupType::Unknown,
        }
    }
}

impl fmt::Display for GroupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error librdkafka or a broker reported, for a whole request, a group
/// or a partition.
///
/// A broker error code that rdkafka's [`RDKafkaErrorCode`] does not list
/// comes through as [`RDKafkaErrorCode::Unknown`], with the number in the
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub code: RDKafkaErrorCode,
    pub message: String,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for AdminError {}

impl AdminError {
    /// An error from a raw code and librdkafka's message for it, if any.
    fn from_raw(raw: c_int, message: Option<String>) -> Self {
        let code = code_from_raw(raw);
        let message = match message.filter(|m| !m.is_empty()) {
            Some(message) => message,
            None => describe_raw(raw),
        };
        AdminError { code, message }
    }

    fn local(code: RDKafkaErrorCode, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

/// A broker, as a group's coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// One group, as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub state: GroupState,
    /// A group that only stores offsets: nobody ever joined it with a
    /// protocol (for example one that only `commit`s with `assign`).
    pub is_simple: bool,
    pub group_type: GroupType,
}

/// A live member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// Set for static members (`group.instance.id`).
    pub group_instance_id: Option<String>,
    /// The partitions assigned to the member, as (topic, partition).
    pub assignment: Vec<(String, i32)>,
}

/// One group, as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// A group that does not exist is `Dead` with no members: that is
    /// what the brokers say about it.
    pub state: GroupState,
    pub is_simple: bool,
    pub group_type: GroupType,
    /// The assignor the members agreed on (`range`, `cooperative-sticky`,
    /// ...); empty when there are no members.
    pub partition_assignor: String,
    pub coordinator: Option<Node>,
    pub members: Vec<GroupMember>,
    /// Why this group could not be described (for example not authorised,
    /// or its coordinator did not answer in time).
    pub error: Option<AdminError>,
}

/// A group's committed offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// None when the group has no committed offset there
    pub offset: Option<i64>,
    /// The metadata string committed with the offset; None when there is
    /// none (null or empty).
    pub metadata: Option<String>,
    pub error: Option<AdminError>,
}

/// A group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group_id: String,
    /// Every partition the group has committed an offset for, sorted by
    /// topic and partition. Empty for a group that never committed (or
    /// does not exist).
    pub offsets: Vec<CommittedOffset>,
    /// Why the offsets of this group could not be read.
    pub error: Option<AdminError>,
}

/// What happened to one partition of an offset change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<AdminError>,
}

/// Why a whole call failed. Failures of single groups or partitions are
/// reported in the results instead.
#[derive(Debug, thiserror::Error)]
pub enum GroupAdminError {
    /// the whole request failed (e.g. timed out, transport)
    #[error("{0}")]
    Request(AdminError),
    #[error("no answer from the brokers within {0:?}")]
    Timeout(Duration),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl GroupAdminError {
    /// The Kafka error code behind the failure: the request's own code,
    /// `OperationTimedOut` for [`GroupAdminError::Timeout`], and none for
    /// an invalid argument (nothing was sent).
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            GroupAdminError::Request(error) => Some(error.code),
            GroupAdminError::Timeout(_) => Some(RDKafkaErrorCode::OperationTimedOut),
            GroupAdminError::InvalidArgument(_) => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Public calls
// ---------------------------------------------------------------------------

/// Every consumer group the brokers know, in the order they reported them.
///
/// ListGroups goes to every broker. The second element holds the errors of
/// the brokers that did not answer; the listing is then partial. When no
/// broker answers at all (the cluster is unreachable), the listing is empty
/// and the errors say why: librdkafka reports it that way, and it cannot be
/// told apart from a cluster with no groups and one silent broker.
pub async fn list_groups(
    admin: &AdminClient<impl ClientContext>,
    timeout: Duration,
) -> Result<(Vec<GroupListing>, Vec<AdminError>), GroupAdminError> {
    let mut queue = {
        let rk = admin.inner().native_ptr();
        let queue = Queue::new(rk)?;
        let options = AdminOptions::new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
            timeout,
        )?;
        // SAFETY: `rk` is the live client `admin` owns (the borrow keeps it
        // alive for this whole call), `options` and `queue` are live objects
        // created for that client. librdkafka copies the options, so they
        // may be destroyed right after the call.
        unsafe { rd::rd_kafka_ListConsumerGroups(rk, options.as_ptr(), queue.as_ptr()) };
        queue
    };
    let mut results = queue
        .collect(
            1,
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
            timeout,
            read_list_groups,
        )
        .await?;
    results.pop().unwrap_or_else(|| Err(missing_result()))
}

/// Describes groups in one request. The result has one entry per input
/// group, in input order (a group named twice is described once and
/// reported twice).
pub async fn describe_groups(
    admin: &AdminClient<impl ClientContext>,
    groups: &[&str],
    timeout: Duration,
) -> Result<Vec<GroupDescription>, GroupAdminError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    // librdkafka refuses duplicates; ask once per distinct group.
    let unique = distinct(groups);
    let names = c_strings(&unique, "group id")?;
    let mut queue = {
        let rk = admin.handle();
        let queue = Queue::new(rk)?;
        let options = AdminOptions::new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            timeout,
        )?;
        let mut pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        // SAFETY: `rk`, `options` and `queue` are live (see list_groups).
        // `pointers` holds `pointers.len()` valid NUL-terminated strings,
        // owned by `names`, which outlives the call; librdkafka copies them
        // (and the options) before it returns.
        unsafe {
            rd::rd_kafka_DescribeConsumerGroups(
                rk,
                pointers.as_mut_ptr(),
                pointers.len(),
                options.as_ptr(),
                queue.as_ptr(),
            )
        };
        queue
    };
    let mut results = queue
        .collect(
            1,
            rd::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
            timeout,
            read_describe_groups,
        )
        .await?;
    let described = results.pop().unwrap_or_else(|| Err(missing_result()))?;
    let by_id: HashMap<&str, &GroupDescription> =
        described.iter().map(|d| (d.group_id.as_str(), d)).collect();
    Ok(groups
        .iter()
        .map(|&group| match by_id.get(group) {
            Some(&description) => description.clone(),
            None => GroupDescription {
                group_id: group.to_string(),
                state: GroupState::Unknown,
                is_simple: false,
                group_type: GroupType::Unknown,
                partition_assignor: String::new(),
                coordinator: None,
                members: Vec::new(),
                error: Some(AdminError::local(
                    RDKafkaErrorCode::Fail,
                    "the brokers' answer did not include this group",
                )),
            },
        })
        .collect())
}

/// One group's commits, by topic and partition, and the partitions whose
/// commit the broker answered with an error instead. A partition in
/// neither map has no commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commits {
    pub offsets: BTreeMap<(String, i32), i64>,
    /// The commit of these partitions is unknown: the group may or may not
    /// have one.
    pub errors: BTreeMap<(String, i32), AdminError>,
}

/// The offsets one group has committed, and the partitions whose commit
/// could not be read; an error of the whole group names it.
///
/// `stable` asks the broker for stable offsets only: a partition with a
/// transactional commit still pending is then answered with
/// `UNSTABLE_OFFSET_COMMIT` rather than with the commit the transaction is
/// about to replace.
pub async fn group_commits(
    admin: &impl OffsetsClient,
    group: &str,
    timeout: Duration,
    stable: bool,
) -> anyhow::Result<Commits> {
    let offsets = list_group_offsets_with(admin, &[group], timeout, stable)
        .await
        .map_err(|e| {
            anyhow::anyhow!("unable to read the committed offsets of group {group}: {e}")
        })?;
    let Some(found) = offsets.first() else {
        return Ok(Commits::default());
    };
    if let Some(e) = &found.error {
        anyhow::bail!("unable to read the committed offsets of group {group}: {e}");
    }
    Ok(commits_of(found))
}

/// Splits one group's answer into commits and errors. An errored partition
/// is never "no commit", whatever offset came with the error.
fn commits_of(found: &GroupOffsets) -> Commits {
    let mut commits = Commits::default();
    for c in &found.offsets {
        let key = (c.topic.clone(), c.partition);
        match (&c.error, c.offset) {
            (Some(e), _) => {
                commits.errors.insert(key, e.clone());
            }
            (None, Some(offset)) => {
                commits.offsets.insert(key, offset);
            }
            (None, None) => {}
        }
    }
    commits
}

/// The offsets one group has committed, by topic and partition. An error
/// names the group, or the first partition whose commit could not be read:
/// taking such a partition for one without a commit would start it over.
pub async fn committed_offsets(
    admin: &impl OffsetsClient,
    group: &str,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let commits = group_commits(admin, group, timeout, false).await?;
    if let Some(((topic, partition), e)) = commits.errors.iter().next() {
        anyhow::bail!(
            "unable to read the committed offset of group {group} on {topic}/{partition}: {e}"
        );
    }
    Ok(commits.offsets)
}

/// librdkafka takes one group per ListConsumerGroupOffsets call, so this
/// issues one call per distinct group, all at once on one result queue,
/// and matches the answers by the opaque each call carries.
///
/// A group whose request failed carries the error in
/// [`GroupOffsets::error`]. Only when every group's request failed inside
/// librdkafka (a timeout or transport error, not a broker's answer) does
/// the whole call fail with [`GroupAdminError::Request`].
pub async fn list_group_offsets(
    admin: &impl OffsetsClient,
    groups: &[&str],
    timeout: Duration,
) -> Result<Vec<GroupOffsets>, GroupAdminError> {
    list_group_offsets_with(admin, groups, timeout, false).await
}

/// [`list_group_offsets`], optionally asking for stable offsets only (see
/// [`group_commits`]).
async fn list_group_offsets_with(
    admin: &impl OffsetsClient,
    groups: &[&str],
    timeout: Duration,
    stable: bool,
) -> Result<Vec<GroupOffsets>, GroupAdminError> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let unique = distinct(groups);
    let names = c_strings(&unique, "group id")?;
    let mut queue = {
        let rk = admin.handle();
        let queue = Queue::new(rk)?;
        for (index, name) in names.iter().enumerate() {
            let mut options = AdminOptions::new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
                timeout,
            )?;
            options.set_opaque(index + 1);
            if stable {
                options.require_stable_offsets()?;
            }
            let request = ListOffsetsRequest::new(name)?;
            let mut requests = [request.as_ptr()];
            // SAFETY: `rk`, `options` and `queue` are live (see
            // list_groups); `requests` is an array of exactly one live
            // ListConsumerGroupOffsets object, as librdkafka requires.
            // librdkafka copies the request and the options before it
            // returns; their guards destroy our copies afterwards.
            unsafe {
                rd::rd_kafka_ListConsumerGroupOffsets(
                    rk,
                    requests.as_mut_ptr(),
                    requests.len(),
                    options.as_ptr(),
                    queue.as_ptr(),
                )
            };
        }
        queue
    };
    let answers = queue
        .collect(
            unique.len(),
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
            timeout,
            read_group_offsets,
        )
        .await?;

    let mut by_group: Vec<Option<GroupOffsets>> = vec![None; unique.len()];
    for (opaque, answer) in answers {
        let index = opaque
            .checked_sub(1)
            .filter(|&i| i < unique.len())
            .or_else(|| unique.iter().position(|&g| g == answer.group_id));
        if let Some(index) = index {
            // The answer names the group as librdkafka copied it; keep the
            // caller's spelling.
            by_group[index] = Some(GroupOffsets {
                group_id: unique[index].to_string(),
                ..answer
            });
        }
    }
    let all_failed_locally = by_group.iter().all(|answer| {
        answer
            .as_ref()
            .and_then(|a| a.error.as_ref())
            .is_some_and(|e| is_local(e.code))
    });
    if all_failed_locally
        && let Some(Some(GroupOffsets {
            error: Some(error), ..
        })) = by_group.first()
    {
        return Err(GroupAdminError::Request(error.clone()));
    }
    let answers: HashMap<&str, GroupOffsets> = unique
        .iter()
        .copied()
        .zip(by_group)
        .map(|(group, answer)| {
            let answer = answer.unwrap_or_else(|| GroupOffsets {
                group_id: group.to_string(),
                offsets: Vec::new(),
                error: Some(AdminError::local(
                    RDKafkaErrorCode::Fail,
                    "the brokers' answer did not include this group",
                )),
            });
            (group, answer)
        })
        .collect();
    Ok(groups
        .iter()
        .filter_map(|group| answers.get(group).cloned())
        .collect())
}

/// Sets a group's committed offsets: (topic, partition, offset) each.
///
/// The result has one entry per partition. The brokers refuse to change
/// the offsets of a group with live members; each partition then carries
/// `UNKNOWN_MEMBER_ID` ([`RDKafkaErrorCode::UnknownMemberId`]).
pub async fn alter_group_offsets(
    admin: &AdminClient<impl ClientContext>,
    group: &str,
    offsets: &[(String, i32, i64)],
    timeout: Duration,
) -> Result<Vec<PartitionResult>, GroupAdminError> {
    check_request(group, offsets.is_empty(), "no offsets to set")?;
    let mut seen = HashSet::new();
    for (topic, partition, offset) in offsets {
        if *offset < 0 {
            return Err(GroupAdminError::InvalidArgument(format!(
                "offset {offset} for {topic}/{partition} is negative"
            )));
        }
        check_partition(&mut seen, topic, *partition)?;
    }
    let group_c = c_string(group, "group id")?;
    let topics = offsets
        .iter()
        .map(|(topic, _, _)| c_string(topic, "topic"))
        .collect::<Result<Vec<_>, _>>()?;

    // Everything librdkafka-owned lives in this block, which has no await:
    // the future holds only the queue (Send) and Rust values.
    let mut queue = {
        let mut list = PartitionList::new(offsets.len())?;
        for (topic, (_, partition, offset)) in topics.iter().zip(offsets) {
            list.add(topic, *partition, *offset)?;
        }
        let request = AlterOffsetsRequest::new(&group_c, &list)?;
        // SAFETY: `request` is a live AlterConsumerGroupOffsets object, the
        // kind rd_kafka_AlterConsumerGroupOffsets sends; its guard outlives
        // the call.
        unsafe {
            send_offsets_request(
                admin,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
                timeout,
                request.as_ptr(),
                rd::rd_kafka_AlterConsumerGroupOffsets,
            )
        }?
    };
    let mut results = queue
        .collect(
            1,
            rd::RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
            timeout,
            read_alter_offsets,
        )
        .await?;
    results.pop().unwrap_or_else(|| Err(missing_result()))
}

/// The librdkafka call that sends an array of requests of type `T`:
/// `rd_kafka_AlterConsumerGroupOffsets` or
/// `rd_kafka_DeleteConsumerGroupOffsets`.
type SendRequests<T> = unsafe extern "C" fn(
    *mut rd::rd_kafka_t,
    *mut *mut T,
    usize,
    *const rd::rd_kafka_AdminOptions_t,
    *mut rd::rd_kafka_queue_t,
);

/// Sends one request of kind `op` on `admin`'s client through `send`, and
/// returns the queue its answer arrives on.
///
/// # Safety
///
/// `request` must be a live request object of the type `send` takes, and
/// stay alive until this returns; `send` must be the librdkafka function
/// for `op`.
unsafe fn send_offsets_request<T>(
    admin: &AdminClient<impl ClientContext>,
    op: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    request: *mut T,
    send: SendRequests<T>,
) -> Result<Queue, GroupAdminError> {
    let rk = admin.inner().native_ptr();
    let queue = Queue::new(rk)?;
    let options = AdminOptions::new(rk, op, timeout)?;
    let mut requests = [request];
    // SAFETY: `rk`, `options` and `queue` are live (see list_groups);
    // `requests` is an array of exactly one live request of the type `send`
    // takes, as the caller guarantees and librdkafka requires. librdkafka
    // copies the request and the options before it returns; their guards
    // destroy our copies afterwards.
    unsafe {
        send(
            rk,
            requests.as_mut_ptr(),
            requests.len(),
            options.as_ptr(),
            queue.as_ptr(),
        );
    }
    Ok(queue)
}

/// Refuses an empty group id, or a request with nothing in it (`nothing`
/// says what is missing), before anything is sent.
fn check_request(group: &str, empty: bool, nothing: &str) -> Result<(), GroupAdminError> {
    if group.is_empty() {
        return Err(GroupAdminError::InvalidArgument(
            "the group id is empty".to_string(),
        ));
    }
    if empty {
        return Err(GroupAdminError::InvalidArgument(nothing.to_string()));
    }
    Ok(())
}

/// Refuses a negative partition, an empty topic name, or a partition
/// `seen` already holds; records it in `seen` otherwise.
fn check_partition<'a>(
    seen: &mut HashSet<(&'a str, i32)>,
    topic: &'a str,
    partition: i32,
) -> Result<(), GroupAdminError> {
    if partition < 0 {
        return Err(GroupAdminError::InvalidArgument(format!(
            "partition {partition} of {topic} is negative"
        )));
    }
    if topic.is_empty() {
        return Err(GroupAdminError::InvalidArgument(
            "a topic name is empty".to_string(),
        ));
    }
    if !seen.insert((topic, partition)) {
        return Err(GroupAdminError::InvalidArgument(format!(
            "{topic}/{partition} is given more than once"
        )));
    }
    Ok(())
}

/// Removes a group's committed offsets for the given partitions, so the
/// group has no commit there (as if it had never consumed them). The broker
/// refuses (GROUP_SUBSCRIBED_TO_TOPIC) when a live member of the group is
/// subscribed to the topic.
///
/// The result has one entry per input partition, in input order. A
/// partition the broker refused carries its error
/// ([`RDKafkaErrorCode::GroupSubscribedToTopic`] for the case above,
/// `UNKNOWN_TOPIC_OR_PARTITION` for a topic that does not exist); a
/// partition the group never committed is no error. When the broker refuses
/// the whole request (for example `GROUP_ID_NOT_FOUND` for a group it does
/// not know), the call fails with [`GroupAdminError::Request`].
pub async fn delete_group_offsets(
    admin: &AdminClient<impl ClientContext>,
    group: &str,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<PartitionResult>, GroupAdminError> {
    check_request(
        group,
        partitions.is_empty(),
        "no partitions to delete offsets for",
    )?;
    let mut seen = HashSet::new();
    for (topic, partition) in partitions {
        check_partition(&mut seen, topic, *partition)?;
    }
    let group_c = c_string(group, "group id")?;
    let topics = partitions
        .iter()
        .map(|(topic, _)| c_string(topic, "topic"))
        .collect::<Result<Vec<_>, _>>()?;
    // librdkafka writes one topic entry per run of equal topic names, so
    // send the partitions grouped by topic; the answer is put back in input
    // order below.
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by(|&a, &b| partitions[a].cmp(&partitions[b]));

    // Everything librdkafka-owned lives in this block, which has no await:
    // the future holds only the queue (Send) and Rust values.
    let mut queue = {
        let mut list = PartitionList::new(partitions.len())?;
        for &index in &order {
            // Only the topic and partition are sent; the offset is unused.
            list.add(&topics[index], partitions[index].1, OFFSET_INVALID)?;
        }
        let request = DeleteOffsetsRequest::new(&group_c, &list)?;
        // SAFETY: `request` is a live DeleteConsumerGroupOffsets object, the
        // kind rd_kafka_DeleteConsumerGroupOffsets sends; its guard outlives
        // the call.
        unsafe {
            send_offsets_request(
                admin,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS,
                timeout,
                request.as_ptr(),
                rd::rd_kafka_DeleteConsumerGroupOffsets,
            )
        }?
    };
    let mut results = queue
        .collect(
            1,
            rd::RD_KAFKA_EVENT_DELETECONSUMERGROUPOFFSETS_RESULT,
            timeout,
            read_delete_offsets,
        )
        .await?;
    let answered = results.pop().unwrap_or_else(|| Err(missing_result()))?;
    let mut by_partition: HashMap<(String, i32), Option<AdminError>> = answered
        .into_iter()
        .map(|r| ((r.topic, r.partition), r.error))
        .collect();
    Ok(partitions
        .iter()
        .map(|(topic, partition)| PartitionResult {
            topic: topic.clone(),
            partition: *partition,
            error: by_partition
                .remove(&(topic.clone(), *partition))
                .unwrap_or_else(|| {
                    Some(AdminError::local(
                        RDKafkaErrorCode::Fail,
                        "the brokers' answer did not include this partition",
                    ))
                }),
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Reading result events (all synchronous: no event lives across an await)
// ---------------------------------------------------------------------------

fn read_list_groups(
    event: &Event,
) -> Result<(Vec<GroupListing>, Vec<AdminError>), GroupAdminError> {
    event.check()?;
    // SAFETY: the event is live and of type LISTCONSUMERGROUPS_RESULT
    // (checked by `Queue::collect`), so this returns the event itself.
    let result = unsafe { rd::rd_kafka_event_ListConsumerGroups_result(event.as_ptr()) };
    if result.is_null() {
        return Err(missing_result());
    }
    let mut valid_count = 0usize;
    // SAFETY: `result` is a live ListConsumerGroups result; the array it
    // returns (and its elements) live as long as the event.
    let valid = unsafe { rd::rd_kafka_ListConsumerGroups_result_valid(result, &mut valid_count) };
    // SAFETY: `valid` holds `valid_count` pointers (or is null), which live
    // as long as the event, which outlives this function.
    let listings = unsafe { pointer_array(valid, valid_count) }
        .into_iter()
        .map(|listing| {
            // SAFETY: `listing` is a live ConsumerGroupListing of the event;
            // the group id it returns lives as long as the listing, and is
            // copied here.
            unsafe {
                GroupListing {
                    group_id: string_or_empty(rd::rd_kafka_ConsumerGroupListing_group_id(listing)),
                    state: GroupState::from_raw(rd_kafka_ConsumerGroupListing_state_raw(listing)),
                    is_simple: rd::rd_kafka_ConsumerGroupListing_is_simple_consumer_group(listing)
                        != 0,
                    group_type: GroupType::from_raw(rd_kafka_ConsumerGroupListing_type_raw(
                        listing,
                    )),
                }
            }
        })
        .collect();
    let mut error_count = 0usize;
    // SAFETY: as for `valid` above.
    let errors = unsafe { rd::rd_kafka_ListConsumerGroups_result_errors(result, &mut error_count) };
    // SAFETY: `errors` holds `error_count` pointers (or is null), live as
    // long as the event.
    let errors = unsafe { pointer_array(errors, error_count) }
        .into_iter()
        // SAFETY: each pointer is a live error object of the event.
        .filter_map(|error| unsafe { admin_error(error) })
        .collect();
    Ok((listings, errors))
}

fn read_describe_groups(event: &Event) -> Result<Vec<GroupDescription>, GroupAdminError> {
    event.check()?;
    // SAFETY: the event is live and of type DESCRIBECONSUMERGROUPS_RESULT.
    let result = unsafe { rd::rd_kafka_event_DescribeConsumerGroups_result(event.as_ptr()) };
    if result.is_null() {
        return Err(missing_result());
    }
    let mut count = 0usize;
    // SAFETY: `result` is a live DescribeConsumerGroups result.
    let groups = unsafe { rd::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count) };
    // SAFETY: `groups` holds `count` pointers (or is null), live as long
    // as the event.
    let groups = unsafe { pointer_array(groups, count) };
    Ok(groups
        .into_iter()
        // SAFETY: each pointer is a live group description of the event.
        .map(|group| unsafe { read_description(group) })
        .collect())
}

/// Copies one group description.
///
/// # Safety
/// `group` must point to a live ConsumerGroupDescription.
unsafe fn read_description(
    group: *const rd::rd_kafka_ConsumerGroupDescription_t,
) -> GroupDescription {
    // SAFETY: the caller guarantees `group` is live; every pointer these
    // accessors return lives as long as `group` and is copied before this
    // function returns.
    unsafe {
        let member_count = rd::rd_kafka_ConsumerGroupDescription_member_count(group);
        let members = (0..member_count)
            .map(|i| rd::rd_kafka_ConsumerGroupDescription_member(group, i))
            .filter(|member| !member.is_null())
            .map(|member| read_member(member))
            .collect();
        let coordinator = rd::rd_kafka_ConsumerGroupDescription_coordinator(group);
        let coordinator = (!coordinator.is_null()).then(|| Node {
            id: rd::rd_kafka_Node_id(coordinator),
            host: string_or_empty(rd::rd_kafka_Node_host(coordinator)),
            port: rd::rd_kafka_Node_port(coordinator),
        });
        GroupDescription {
            group_id: string_or_empty(rd::rd_kafka_ConsumerGroupDescription_group_id(group)),
            state: GroupState::from_raw(rd_kafka_ConsumerGroupDescription_state_raw(group)),
            is_simple: rd::rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(group) != 0,
            group_type: GroupType::from_raw(rd_kafka_ConsumerGroupDescription_type_raw(group)),
            partition_assignor: string_or_empty(
                rd::rd_kafka_ConsumerGroupDescription_partition_assignor(group),
            ),
            coordinator,
            members,
            error: admin_error(rd::rd_kafka_ConsumerGroupDescription_error(group)),
        }
    }
}

/// Copies one member description.
///
/// # Safety
/// `member` must point to a live MemberDescription.
unsafe fn read_member(member: *const rd::rd_kafka_MemberDescription_t) -> GroupMember {
    // SAFETY: the caller guarantees `member` is live; the strings, the
    // assignment and its partition list live as long as `member` and are
    // copied here.
    unsafe {
        let assignment = rd::rd_kafka_MemberDescription_assignment(member);
        let partitions = if assignment.is_null() {
            std::ptr::null()
        } else {
            rd::rd_kafka_MemberAssignment_partitions(assignment)
        };
        let assignment = read_partitions(partitions)
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect();
        GroupMember {
            member_id: string_or_empty(rd::rd_kafka_MemberDescription_consumer_id(member)),
            client_id: string_or_empty(rd::rd_kafka_MemberDescription_client_id(member)),
            host: string_or_empty(rd::rd_kafka_MemberDescription_host(member)),
            group_instance_id: opt_string(rd::rd_kafka_MemberDescription_group_instance_id(member)),
            assignment,
        }
    }
}

/// One ListConsumerGroupOffsets answer, with the opaque of its request
/// (0 if it carried none).
fn read_group_offsets(event: &Event) -> (usize, GroupOffsets) {
    let opaque = event.opaque();
    let mut answer = GroupOffsets {
        group_id: String::new(),
        offsets: Vec::new(),
        error: None,
    };
    if let Err(error) = event.check() {
        answer.error = Some(match error {
            GroupAdminError::Request(error) => error,
            other => AdminError::local(RDKafkaErrorCode::Fail, other.to_string()),
        });
        return (opaque, answer);
    }
    // SAFETY: the event is live and of type LISTCONSUMERGROUPOFFSETS_RESULT.
    let result = unsafe { rd::rd_kafka_event_ListConsumerGroupOffsets_result(event.as_ptr()) };
    if result.is_null() {
        answer.error = Some(AdminError::local(
            RDKafkaErrorCode::Fail,
            "librdkafka returned no result",
        ));
        return (opaque, answer);
    }
    let mut count = 0usize;
    // SAFETY: `result` is a live ListConsumerGroupOffsets result.
    let groups = unsafe { rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count) };
    // SAFETY: `groups` holds `count` pointers (or is null), live as long as
    // the event.
    for group in unsafe { pointer_array(groups, count) } {
        // SAFETY: `group` is a live group result of the event; its name,
        // error and partition list live as long as it and are copied here.
        unsafe {
            answer.group_id = string_or_empty(rd::rd_kafka_group_result_name(group));
            answer.error = admin_error(rd::rd_kafka_group_result_error(group));
            answer.offsets = read_partitions(rd::rd_kafka_group_result_partitions(group))
                .into_iter()
                .map(|p| CommittedOffset {
                    topic: p.topic,
                    partition: p.partition,
                    offset: (p.offset != OFFSET_INVALID).then_some(p.offset),
                    metadata: p.metadata,
                    error: p.error,
                })
                .collect();
        }
    }
    answer
        .offsets
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    (opaque, answer)
}

fn read_alter_offsets(event: &Event) -> Result<Vec<PartitionResult>, GroupAdminError> {
    event.check()?;
    // SAFETY: the event is live and of type ALTERCONSUMERGROUPOFFSETS_RESULT.
    let result = unsafe { rd::rd_kafka_event_AlterConsumerGroupOffsets_result(event.as_ptr()) };
    if result.is_null() {
        return Err(missing_result());
    }
    let mut count = 0usize;
    // SAFETY: `result` is a live AlterConsumerGroupOffsets result.
    let groups =
        unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &mut count) };
    // SAFETY: `groups` holds `count` pointers (or is null), live as long as
    // the event, which outlives this call.
    unsafe { read_partition_results(groups, count) }
}

fn read_delete_offsets(event: &Event) -> Result<Vec<PartitionResult>, GroupAdminError> {
    event.check()?;
    // SAFETY: the event is live and of type DELETECONSUMERGROUPOFFSETS_RESULT.
    let result = unsafe { rd::rd_kafka_event_DeleteConsumerGroupOffsets_result(event.as_ptr()) };
    if result.is_null() {
        return Err(missing_result());
    }
    let mut count = 0usize;
    // SAFETY: `result` is a live DeleteConsumerGroupOffsets result.
    let groups =
        unsafe { rd::rd_kafka_DeleteConsumerGroupOffsets_result_groups(result, &mut count) };
    // SAFETY: `groups` holds `count` pointers (or is null), live as long as
    // the event, which outlives this call.
    unsafe { read_partition_results(groups, count) }
}

/// The per-partition outcome of an offset change, from the group results
/// of its result event.
///
/// # Safety
/// `groups` must be null or point to `count` pointers to live group results
/// that stay valid for the duration of the call.
unsafe fn read_partition_results(
    groups: *mut *const rd::rd_kafka_group_result_t,
    count: usize,
) -> Result<Vec<PartitionResult>, GroupAdminError> {
    let mut out = Vec::new();
    // SAFETY: `groups` holds `count` pointers (or is null) (caller).
    for group in unsafe { pointer_array(groups, count) } {
        // SAFETY: `group` is a live group result (caller); its error and
        // partition list live as long as it and are copied here.
        let (group_error, partitions) = unsafe {
            (
                admin_error(rd::rd_kafka_group_result_error(group)),
                read_partitions(rd::rd_kafka_group_result_partitions(group)),
            )
        };
        if partitions.is_empty()
            && let Some(error) = group_error
        {
            return Err(GroupAdminError::Request(error));
        }
        out.extend(partitions.into_iter().map(|p| PartitionResult {
            topic: p.topic,
            partition: p.partition,
            // A group-level error applies to every partition that has
            // none of its own.
            error: p.error.or_else(|| group_error.clone()),
        }));
    }
    Ok(out)
}

/// One element of a librdkafka topic-partition list, copied.
struct Partition {
    topic: String,
    partition: i32,
    offset: i64,
    metadata: Option<String>,
    error: Option<AdminError>,
}

/// Copies a topic-partition list.
///
/// # Safety
/// `list` must be null or point to a live topic-partition list.
unsafe fn read_partitions(list: *const rd::rd_kafka_topic_partition_list_t) -> Vec<Partition> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: `list` is live (caller); reading its plain integer and
    // pointer fields through the raw pointer is sound.
    let (count, elems) = unsafe { ((*list).cnt, (*list).elems) };
    let count = usize::try_from(count).unwrap_or(0);
    if elems.is_null() {
        return Vec::new();
    }
    (0..count)
        .map(|i| {
            // SAFETY: `elems` points to `cnt` initialised elements, so
            // `elems + i` is in bounds. Fields are read one at a time
            // through raw places, never as a whole struct or a reference,
            // and `err` is read as the `i32` it is in C (see the module
            // docs), so a code the Rust enum lacks is not undefined
            // behaviour. The topic string and metadata buffer live as long
            // as the list and are copied here.
            unsafe {
                let elem = elems.add(i);
                let topic = string_or_empty((*elem).topic);
                let partition = (*elem).partition;
                let offset = (*elem).offset;
                let metadata_ptr = (*elem).metadata;
                let metadata_len = (*elem).metadata_size;
                let raw_error = std::ptr::addr_of!((*elem).err).cast::<i32>().read();
                let metadata = if metadata_ptr.is_null() || metadata_len == 0 {
                    None
                } else {
                    let bytes = std::slice::from_raw_parts(metadata_ptr.cast::<u8>(), metadata_len);
                    Some(String::from_utf8_lossy(bytes).into_owned())
                };
                let error = (raw_error != 0).then(|| AdminError::from_raw(raw_error, None));
                Partition {
                    topic,
                    partition,
                    offset,
                    metadata,
                    error,
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// RAII guards for librdkafka objects
// ---------------------------------------------------------------------------

/// A result queue of our own, destroyed on drop.
///
/// Dropping it while a request is in flight is fine: librdkafka keeps its
/// own reference to the queue, disables it, and frees the late result.
struct Queue(NonNull<rd::rd_kafka_queue_t>);

// SAFETY: an `rd_kafka_queue_t` is a handle to a mutex-protected librdkafka
// queue; librdkafka allows polling and destroying it from any thread (its
// own consumers and the background thread do so). `Queue` is the sole owner
// of the handle and is not `Clone`, so moving it to another thread (as a
// future moved between tokio workers does) cannot create shared access.
unsafe impl Send for Queue {}

impl Queue {
    fn new(rk: *mut rd::rd_kafka_t) -> Result<Queue, GroupAdminError> {
        // SAFETY: `rk` is the live client of an `AdminClient` the caller
        // borrows.
        let queue = unsafe { rd::rd_kafka_queue_new(rk) };
        NonNull::new(queue).map(Queue).ok_or_else(|| {
            GroupAdminError::Request(AdminError::local(
                RDKafkaErrorCode::Fail,
                "librdkafka could not create a result queue",
            ))
        })
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_queue_t {
        self.0.as_ptr()
    }

    /// The next event, if one is there now. Never blocks.
    fn poll(&self) -> Option<Event> {
        // SAFETY: the queue is live while `self` is; a zero timeout makes
        // this a non-blocking check. The event returned is ours to destroy.
        let event = unsafe { rd::rd_kafka_queue_poll(self.as_ptr(), 0) };
        NonNull::new(event).map(Event)
    }

    /// Waits for `expected` events of type `kind`, handing each to `read`
    /// as it arrives and destroying it right after: no event is held across
    /// an await, only what `read` copied out of it.
    ///
    /// Takes `&mut self` so that the future, which holds the borrow across
    /// its awaits, needs `Queue: Send` only, not `Sync`.
    async fn collect<T>(
        &mut self,
        expected: usize,
        kind: c_int,
        timeout: Duration,
        mut read: impl FnMut(&Event) -> T,
    ) -> Result<Vec<T>, GroupAdminError> {
        let deadline = Instant::now().checked_add(timeout.saturating_add(GRACE));
        let mut out = Vec::with_capacity(expected);
        while out.len() < expected {
            if let Some(event) = self.poll() {
                if event.kind() == kind {
                    out.push(read(&event));
                }
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(GroupAdminError::Timeout(timeout));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(out)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_new, is owned only by
        // `self`, and is destroyed exactly once, here.
        unsafe { rd::rd_kafka_queue_destroy(self.as_ptr()) }
    }
}

/// A result event, destroyed on drop. Not `Send`: it never leaves the
/// synchronous code that reads it.
struct Event(NonNull<rd::rd_kafka_event_t>);

impl Event {
    fn as_ptr(&self) -> *mut rd::rd_kafka_event_t {
        self.0.as_ptr()
    }

    fn kind(&self) -> c_int {
        // SAFETY: the event is live while `self` is.
        unsafe { rd::rd_kafka_event_type(self.as_ptr()) }
    }

    /// The opaque the request carried, as the integer it encodes.
    fn opaque(&self) -> usize {
        // SAFETY: the event is live while `self` is. The pointer is only
        // looked at as an integer, never dereferenced.
        unsafe { rd::rd_kafka_event_opaque(self.as_ptr()) }.addr()
    }

    /// The whole request's error, if it failed.
    fn check(&self) -> Result<(), GroupAdminError> {
        // SAFETY: the event is live while `self` is; the error string lives
        // as long as the event and is copied here.
        let (raw, message) = unsafe {
            let raw = rd_kafka_event_error_raw(self.as_ptr());
            if raw == 0 {
                return Ok(());
            }
            (
                raw,
                opt_string(rd::rd_kafka_event_error_string(self.as_ptr())),
            )
        };
        Err(GroupAdminError::Request(AdminError::from_raw(raw, message)))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: the event came from rd_kafka_queue_poll, is owned only by
        // `self`, and is destroyed exactly once, here; everything read from
        // it has been copied by then.
        unsafe { rd::rd_kafka_event_destroy(self.as_ptr()) }
    }
}

/// Admin options for one request type, with the request timeout set.
struct AdminOptions(NonNull<rd::rd_kafka_AdminOptions_t>);

impl AdminOptions {
    fn new(
        rk: *mut rd::rd_kafka_t,
        op: rd::rd_kafka_admin_op_t,
        timeout: Duration,
    ) -> Result<AdminOptions, GroupAdminError> {
        // SAFETY: `rk` is a live client and `op` a valid request type.
        let options = unsafe { rd::rd_kafka_AdminOptions_new(rk, op) };
        let options = NonNull::new(options).map(AdminOptions).ok_or_else(|| {
            GroupAdminError::Request(AdminError::local(
                RDKafkaErrorCode::Fail,
                "librdkafka could not create admin options",
            ))
        })?;
        let timeout_ms =
            c_int::try_from(timeout.as_millis().min(MAX_REQUEST_TIMEOUT_MS)).unwrap_or(c_int::MAX);
        let mut errstr = [0 as c_char; 512];
        // SAFETY: the options are live; `errstr` is a writable buffer of the
        // size passed, which librdkafka NUL-terminates.
        let err = unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options.as_ptr(),
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka wrote a NUL-terminated message into the
            // zero-initialised buffer (whose last byte it never overwrites).
            let message = unsafe { opt_string(errstr.as_ptr()) };
            return Err(GroupAdminError::InvalidArgument(message.unwrap_or_else(
                || format!("request timeout {timeout:?} is out of range"),
            )));
        }
        Ok(options)
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_AdminOptions_t {
        self.0.as_ptr()
    }

    /// Asks for stable offsets only: a partition with a pending
    /// transactional commit is answered with `UNSTABLE_OFFSET_COMMIT`.
    fn require_stable_offsets(&mut self) -> Result<(), GroupAdminError> {
        // SAFETY: the options are live. The returned error object, if any,
        // is ours: copied, then destroyed exactly once.
        unsafe {
            let error = rd::rd_kafka_AdminOptions_set_require_stable_offsets(self.as_ptr(), 1);
            if error.is_null() {
                return Ok(());
            }
            let copied = admin_error(error);
            rd::rd_kafka_error_destroy(error);
            Err(GroupAdminError::InvalidArgument(
                copied.map(|e| e.to_string()).unwrap_or_default(),
            ))
        }
    }

    /// Tags the request's result event with an integer, read back with
    /// [`Event::opaque`].
    fn set_opaque(&mut self, value: usize) {
        // SAFETY: the options are live. The opaque is an integer disguised
        // as a pointer (without provenance); librdkafka only stores and
        // returns it, and nothing dereferences it.
        unsafe {
            rd::rd_kafka_AdminOptions_set_opaque(
                self.as_ptr(),
                std::ptr::without_provenance_mut::<c_void>(value),
            )
        }
    }
}

impl Drop for AdminOptions {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AdminOptions_new, owned only by `self`,
        // destroyed exactly once; requests copied what they needed.
        unsafe { rd::rd_kafka_AdminOptions_destroy(self.as_ptr()) }
    }
}

/// A topic-partition list we build, destroyed on drop.
struct PartitionList(NonNull<rd::rd_kafka_topic_partition_list_t>);

impl PartitionList {
    fn new(capacity: usize) -> Result<PartitionList, GroupAdminError> {
        let capacity = c_int::try_from(capacity)
            .map_err(|_| GroupAdminError::InvalidArgument("too many partitions".to_string()))?;
        // SAFETY: any non-negative size is valid.
        let list = unsafe { rd::rd_kafka_topic_partition_list_new(capacity) };
        NonNull::new(list).map(PartitionList).ok_or_else(|| {
            GroupAdminError::Request(AdminError::local(
                RDKafkaErrorCode::Fail,
                "librdkafka could not create a partition list",
            ))
        })
    }

    fn add(&mut self, topic: &CStr, partition: i32, offset: i64) -> Result<(), GroupAdminError> {
        // SAFETY: the list is live and `topic` a valid C string, which
        // librdkafka copies. The element returned belongs to the list.
        let elem = unsafe {
            rd::rd_kafka_topic_partition_list_add(self.0.as_ptr(), topic.as_ptr(), partition)
        };
        if elem.is_null() {
            return Err(GroupAdminError::Request(AdminError::local(
                RDKafkaErrorCode::Fail,
                "librdkafka could not add to a partition list",
            )));
        }
        // SAFETY: `elem` is a live element of the list we own exclusively;
        // writing its plain `offset` field through the raw place is sound.
        unsafe { (*elem).offset = offset };
        Ok(())
    }

    fn as_ptr(&self) -> *const rd::rd_kafka_topic_partition_list_t {
        self.0.as_ptr()
    }
}

impl Drop for PartitionList {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_topic_partition_list_new, owned only
        // by `self`, destroyed exactly once.
        unsafe { rd::rd_kafka_topic_partition_list_destroy(self.0.as_ptr()) }
    }
}

/// The argument of one ListConsumerGroupOffsets call (all partitions).
struct ListOffsetsRequest(NonNull<rd::rd_kafka_ListConsumerGroupOffsets_t>);

impl ListOffsetsRequest {
    fn new(group: &CStr) -> Result<ListOffsetsRequest, GroupAdminError> {
        // SAFETY: `group` is a valid C string, copied by librdkafka; a null
        // partition list asks for every partition the group committed.
        let request =
            unsafe { rd::rd_kafka_ListConsumerGroupOffsets_new(group.as_ptr(), std::ptr::null()) };
        created(request, "a ListConsumerGroupOffsets request").map(ListOffsetsRequest)
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_ListConsumerGroupOffsets_t {
        self.0.as_ptr()
    }
}

impl Drop for ListOffsetsRequest {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_ListConsumerGroupOffsets_new, owned
        // only by `self`, destroyed exactly once.
        unsafe { rd::rd_kafka_ListConsumerGroupOffsets_destroy(self.as_ptr()) }
    }
}

/// `object` as librdkafka created it, or the error that it could not
/// create `what` (it returns null for that).
fn created<T>(object: *mut T, what: &str) -> Result<NonNull<T>, GroupAdminError> {
    NonNull::new(object).ok_or_else(|| {
        GroupAdminError::Request(AdminError::local(
            RDKafkaErrorCode::Fail,
            format!("librdkafka could not create {what}"),
        ))
    })
}

/// The argument of one AlterConsumerGroupOffsets call.
struct AlterOffsetsRequest(NonNull<rd::rd_kafka_AlterConsumerGroupOffsets_t>);

impl AlterOffsetsRequest {
    fn new(group: &CStr, offsets: &PartitionList) -> Result<AlterOffsetsRequest, GroupAdminError> {
        // SAFETY: `group` is a valid C string and `offsets` a live list;
        // librdkafka copies both.
        let request =
            unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_new(group.as_ptr(), offsets.as_ptr()) };
        created(request, "an AlterConsumerGroupOffsets request").map(AlterOffsetsRequest)
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_AlterConsumerGroupOffsets_t {
        self.0.as_ptr()
    }
}

impl Drop for AlterOffsetsRequest {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_AlterConsumerGroupOffsets_new, owned
        // only by `self`, destroyed exactly once.
        unsafe { rd::rd_kafka_AlterConsumerGroupOffsets_destroy(self.as_ptr()) }
    }
}

/// The argument of one DeleteConsumerGroupOffsets call.
struct DeleteOffsetsRequest(NonNull<rd::rd_kafka_DeleteConsumerGroupOffsets_t>);

impl DeleteOffsetsRequest {
    fn new(
        group: &CStr,
        partitions: &PartitionList,
    ) -> Result<DeleteOffsetsRequest, GroupAdminError> {
        // SAFETY: `group` is a valid C string and `partitions` a live
        // (non-null) list, as librdkafka requires; it copies both.
        let request = unsafe {
            rd::rd_kafka_DeleteConsumerGroupOffsets_new(group.as_ptr(), partitions.as_ptr())
        };
        created(request, "a DeleteConsumerGroupOffsets request").map(DeleteOffsetsRequest)
    }

    fn as_ptr(&self) -> *mut rd::rd_kafka_DeleteConsumerGroupOffsets_t {
        self.0.as_ptr()
    }
}

impl Drop for DeleteOffsetsRequest {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_DeleteConsumerGroupOffsets_new, owned
        // only by `self`, destroyed exactly once.
        unsafe { rd::rd_kafka_DeleteConsumerGroupOffsets_destroy(self.as_ptr()) }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A C string: None for NULL, invalid UTF-8 replaced.
///
/// # Safety
/// `ptr` must be null or point to a NUL-terminated string that stays valid
/// for the duration of the call.
unsafe fn opt_string(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated (caller).
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A C string, empty for NULL.
///
/// # Safety
/// As for [`opt_string`].
unsafe fn string_or_empty(ptr: *const c_char) -> String {
    // SAFETY: forwarded from the caller.
    unsafe { opt_string(ptr) }.unwrap_or_default()
}

/// Copies the pointers of a librdkafka result array.
///
/// # Safety
/// `array` must be null or point to `count` readable pointers.
unsafe fn pointer_array<T>(array: *mut *const T, count: usize) -> Vec<*const T> {
    if array.is_null() || count == 0 {
        return Vec::new();
    }
    // SAFETY: `array` points to `count` initialised pointers (caller).
    unsafe { std::slice::from_raw_parts(array.cast_const(), count) }
        .iter()
        .copied()
        .filter(|p| !p.is_null())
        .collect()
}

/// Copies an error object, None for NULL.
///
/// # Safety
/// `error` must be null or point to a live `rd_kafka_error_t`.
unsafe fn admin_error(error: *const rd::rd_kafka_error_t) -> Option<AdminError> {
    if error.is_null() {
        return None;
    }
    // SAFETY: live error object (caller); its string lives as long as it
    // and is copied here.
    let (raw, message) = unsafe {
        (
            rd_kafka_error_code_raw(error),
            opt_string(rd::rd_kafka_error_string(error)),
        )
    };
    Some(AdminError::from_raw(raw, message))
}

/// An error code from its integer; codes rdkafka does not list become
/// `Unknown`.
fn code_from_raw(raw: c_int) -> RDKafkaErrorCode {
    match RDKafkaRespErr::try_from(raw) {
        Ok(err) => RDKafkaErrorCode::from(err),
        Err(_) => RDKafkaErrorCode::Unknown,
    }
}

/// librdkafka's words for an error code.
fn describe_raw(raw: c_int) -> String {
    match RDKafkaRespErr::try_from(raw) {
        // SAFETY: rd_kafka_err2str accepts any code and returns a static
        // NUL-terminated string.
        Ok(err) => unsafe { string_or_empty(rd::rd_kafka_err2str(err)) },
        Err(_) => format!("broker error code {raw}"),
    }
}

/// Whether librdkafka itself raised the code (a timeout, a transport
/// failure, ...) rather than a broker answering with it.
fn is_local(code: RDKafkaErrorCode) -> bool {
    (code as i32) < 0 && code != RDKafkaErrorCode::Unknown
}

fn missing_result() -> GroupAdminError {
    GroupAdminError::Request(AdminError::local(
        RDKafkaErrorCode::Fail,
        "librdkafka returned no result",
    ))
}

/// The distinct names, in first-seen order.
fn distinct<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.iter().copied().filter(|n| seen.insert(*n)).collect()
}

fn c_string(value: &str, what: &str) -> Result<CString, GroupAdminError> {
    CString::new(value)
        .map_err(|_| GroupAdminError::InvalidArgument(format!("{what} {value:?} contains NUL")))
}

fn c_strings(values: &[&str], what: &str) -> Result<Vec<CString>, GroupAdminError> {
    values
        .iter()
        .map(|value| {
            if value.is_empty() {
                Err(GroupAdminError::InvalidArgument(format!(
                    "a {what} is empty"
                )))
            } else {
                c_string(value, what)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_in_any_spelling() {
        for state in [
            GroupState::Unknown,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
            GroupState::Empty,
            GroupState::Assigning,
            GroupState::Reconciling,
        ] {
            assert_eq!(GroupState::parse(state.as_str()), Some(state));
            assert_eq!(
                GroupState::parse(&state.as_str().to_uppercase()),
                Some(state)
            );
        }
        assert_eq!(
            GroupState::parse("preparing-rebalance"),
            Some(GroupState::PreparingRebalance)
        );
        assert_eq!(
            GroupState::parse("completing_rebalance"),
            Some(GroupState::CompletingRebalance)
        );
        assert_eq!(GroupState::parse("stable"), Some(GroupState::Stable));
        assert_eq!(GroupState::parse("nope"), None);
        assert_eq!(GroupState::parse(""), None);
    }

    #[test]
    fn raw_states_and_types_map_and_tolerate_unknown_values() {
        assert_eq!(GroupState::from_raw(3), GroupState::Stable);
        assert_eq!(GroupState::from_raw(5), GroupState::Empty);
        assert_eq!(GroupState::from_raw(4), GroupState::Dead);
        assert_eq!(GroupState::from_raw(99), GroupState::Unknown);
        assert_eq!(GroupType::from_raw(1), GroupType::Consumer);
        assert_eq!(GroupType::from_raw(2), GroupType::Classic);
        assert_eq!(GroupType::from_raw(-7), GroupType::Unknown);
    }

    #[test]
    fn raw_error_codes_never_become_invalid_enums() {
        assert_eq!(code_from_raw(25), RDKafkaErrorCode::UnknownMemberId);
        assert_eq!(code_from_raw(-185), RDKafkaErrorCode::OperationTimedOut);
        // 105 is a real Kafka code (TRANSACTIONAL_ID_NOT_FOUND) that the
        // binding enum lacks.
        assert_eq!(code_from_raw(105), RDKafkaErrorCode::Unknown);
        assert_eq!(describe_raw(105), "broker error code 105");
        let error = AdminError::from_raw(25, None);
        assert_eq!(error.code, RDKafkaErrorCode::UnknownMemberId);
        assert!(!error.message.is_empty());
    }

    #[test]
    fn a_partition_answered_with_an_error_is_never_taken_for_no_commit() {
        let committed = |partition, offset, error| CommittedOffset {
            topic: "t".into(),
            partition,
            offset,
            metadata: None,
            error,
        };
        let unstable = AdminError::from_raw(88, None);
        let answer = GroupOffsets {
            group_id: "g".into(),
            offsets: vec![
                committed(0, Some(5), None),
                committed(1, None, Some(unstable.clone())),
                // An offset that comes with an error is no commit either.
                committed(2, Some(9), Some(unstable.clone())),
                committed(3, None, None),
            ],
            error: None,
        };
        let commits = commits_of(&answer);
        assert_eq!(commits.offsets, BTreeMap::from([(("t".to_string(), 0), 5)]));
        assert_eq!(
            commits.errors,
            BTreeMap::from([
                (("t".to_string(), 1), unstable.clone()),
                (("t".to_string(), 2), unstable),
            ])
        );
    }

    #[test]
    fn distinct_keeps_first_seen_order() {
        assert_eq!(distinct(&["b", "a", "b", "c", "a"]), vec!["b", "a", "c"]);
    }

    #[test]
    fn error_codes() {
        let timeout = GroupAdminError::Timeout(Duration::from_secs(1));
        assert_eq!(timeout.code(), Some(RDKafkaErrorCode::OperationTimedOut));
        assert_eq!(GroupAdminError::InvalidArgument("x".into()).code(), None);
    }
}
