//! `smmctl::kafka::groups` against the real broker: listing and describing
//! consumer groups, and listing, altering and deleting their committed
//! offsets.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use smmctl::kafka::groups::{
    self, CommittedOffset, GroupAdminError, GroupDescription, GroupState, GroupType,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn admin_client() -> AdminClient<DefaultClientContext> {
    client_config().create().expect("admin client")
}

/// A topic with `partitions` partitions and 10 records in each.
async fn topic_with_records(what: &str, partitions: i32) -> String {
    let topic = unique(what);
    create_topic(&topic, partitions).await;
    let records: Vec<(&str, &[u8])> = (0..10).map(|_| ("k", b"v".as_slice())).collect();
    for partition in 0..partitions {
        produce(&topic, Some(partition), &records, &[]).await;
    }
    topic
}

fn offsets_of(offsets: &[CommittedOffset]) -> Vec<(String, i32, Option<i64>)> {
    offsets
        .iter()
        .map(|o| (o.topic.clone(), o.partition, o.offset))
        .collect()
}

/// Committed offsets, without the partitions that have none.
fn committed(offsets: &[CommittedOffset]) -> Vec<(String, i32, i64)> {
    offsets
        .iter()
        .filter_map(|o| o.offset.map(|off| (o.topic.clone(), o.partition, off)))
        .collect()
}

/// Counts the rebalances a consumer goes through: any change of generation
/// reaches the member as one.
#[derive(Default)]
struct CountingContext {
    rebalances: Arc<AtomicUsize>,
}

impl ClientContext for CountingContext {}

impl ConsumerContext for CountingContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }
}

/// A subscribed consumer that stays in its group, polling on its own
/// thread, until dropped.
struct LiveMember {
    client_id: String,
    rebalances: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveMember {
    /// Joins `group` subscribed to `topic` and waits until it owns
    /// `partitions` partitions.
    fn join(group: &str, topic: &str, partitions: usize) -> LiveMember {
        let client_id = unique("member");
        let rebalances = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (group, topic, client_id) =
                (group.to_string(), topic.to_string(), client_id.clone());
            let (rebalances, stop) = (rebalances.clone(), stop.clone());
            std::thread::spawn(move || {
                let consumer: BaseConsumer<CountingContext> = client_config()
                    .set("group.id", &group)
                    .set("client.id", &client_id)
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest")
                    .create_with_context(CountingContext { rebalances })
                    .expect("consumer");
                consumer.subscribe(&[&topic]).expect("subscribe");
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut ready = false;
                while !stop.load(Ordering::SeqCst) {
                    let _ = consumer.poll(Duration::from_millis(100));
                    if !ready && consumer.assignment().is_ok_and(|a| a.count() == partitions) {
                        ready = true;
                        let _ = ready_tx.send(());
                    }
                    assert!(ready || Instant::now() < deadline, "no assignment");
                }
            })
        };
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the member got its assignment");
        LiveMember {
            client_id,
            rebalances,
            stop,
            thread: Some(thread),
        }
    }

    fn rebalances(&self) -> usize {
        self.rebalances.load(Ordering::SeqCst)
    }
}

impl Drop for LiveMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Describes one group, retrying while the coordinator is still settling
/// it (a group just joined can be mid-rebalance for a moment).
async fn describe_stable(
    admin: &AdminClient<DefaultClientContext>,
    group: &str,
) -> GroupDescription {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut d = groups::describe_groups(admin, &[group], TIMEOUT)
            .await
            .expect("describe_groups");
        let d = d.remove(0);
        if d.state == GroupState::Stable || Instant::now() > deadline {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_groups_finds_a_group_that_committed_offsets_as_empty() {
    require_broker();
    let topic = topic_with_records("groups.list", 3).await;
    let group = unique("group.list");
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 3)]);

    let admin = admin_client();
    let (listings, errors) = groups::list_groups(&admin, TIMEOUT)
        .await
        .expect("list_groups");
    assert!(errors.is_empty(), "per-broker errors: {errors:?}");
    let listing = listings
        .iter()
        .find(|l| l.group_id == group)
        .unwrap_or_else(|| panic!("{group} not in {listings:?}"));
    assert_eq!(listing.state, GroupState::Empty, "{listing:?}");
    assert_eq!(listing.group_type, GroupType::Classic, "{listing:?}");
    // Nobody ever joined it with a protocol: it only stores offsets.
    assert!(listing.is_simple, "{listing:?}");
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_group_offsets_returns_exactly_the_committed_offsets_in_input_order() {
    require_broker();
    let topic = topic_with_records("groups.offsets", 3).await;
    let other = topic_with_records("groups.offsets.other", 1).await;
    let first = unique("group.offsets.a");
    let second = unique("group.offsets.b");
    let never = unique("group.offsets.never");
    commit_offsets(&first, &[(&topic, 0, 7), (&topic, 1, 3)]);
    commit_offsets(&second, &[(&other, 0, 10), (&topic, 2, 1)]);

    let admin = admin_client();
    let result = groups::list_group_offsets(&admin, &[&second, &never, &first, &second], TIMEOUT)
        .await
        .expect("list_group_offsets");
    let ids: Vec<&str> = result.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(ids, [&second, &never, &first, &second]);

    let a = &result[2];
    assert_eq!(a.error, None);
    assert_eq!(
        offsets_of(&a.offsets),
        [(topic.clone(), 0, Some(7)), (topic.clone(), 1, Some(3))],
        "partition 2 was never committed: {a:?}"
    );
    assert!(a.offsets.iter().all(|o| o.error.is_none()), "{a:?}");

    let b = &result[0];
    assert_eq!(b.error, None);
    let mut expected = vec![(other.clone(), 0, 10), (topic.clone(), 2, 1)];
    expected.sort();
    assert_eq!(committed(&b.offsets), expected);
    assert_eq!(result[3], result[0]);

    let n = &result[1];
    assert!(committed(&n.offsets).is_empty(), "{n:?}");
    assert!(
        n.error.is_none() || n.error.as_ref().unwrap().code == RDKafkaErrorCode::GroupIdNotFound,
        "{n:?}"
    );

    // Nothing asked, nothing sent.
    assert!(
        groups::list_group_offsets(&admin, &[], TIMEOUT)
            .await
            .expect("empty")
            .is_empty()
    );
    delete_topics(&[&topic, &other]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_groups_shows_a_live_member_and_a_missing_group_as_dead() {
    require_broker();
    let topic = topic_with_records("groups.describe", 2).await;
    let group = unique("group.describe");
    let missing = unique("group.describe.missing");
    let member = LiveMember::join(&group, &topic, 2);

    let admin = admin_client();
    // Settle first: one request for both groups comes after.
    describe_stable(&admin, &group).await;
    let described = groups::describe_groups(&admin, &[&missing, &group], TIMEOUT)
        .await
        .expect("describe_groups");
    assert_eq!(described.len(), 2);

    let gone = &described[0];
    assert_eq!(gone.group_id, missing);
    assert_eq!(gone.state, GroupState::Dead, "{gone:?}");
    assert!(gone.members.is_empty(), "{gone:?}");

    let live = &described[1];
    assert_eq!(live.group_id, group);
    assert_eq!(live.error, None, "{live:?}");
    assert_eq!(live.state, GroupState::Stable, "{live:?}");
    assert!(!live.is_simple, "{live:?}");
    assert_eq!(live.group_type, GroupType::Classic, "{live:?}");
    assert!(
        ["range", "roundrobin", "cooperative-sticky"].contains(&live.partition_assignor.as_str()),
        "{live:?}"
    );
    let coordinator = live.coordinator.as_ref().expect("coordinator");
    assert!(
        coordinator.id >= 0 && coordinator.port > 0,
        "{coordinator:?}"
    );
    assert_eq!(live.members.len(), 1, "{live:?}");
    let m = &live.members[0];
    assert_eq!(m.client_id, member.client_id);
    assert!(!m.member_id.is_empty(), "{m:?}");
    assert!(!m.host.is_empty(), "{m:?}");
    assert_eq!(m.group_instance_id, None);
    let mut assignment = m.assignment.clone();
    assignment.sort();
    assert_eq!(assignment, [(topic.clone(), 0), (topic.clone(), 1)]);

    drop(member);
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_group_offsets_moves_the_offsets_of_an_empty_group() {
    require_broker();
    let topic = topic_with_records("groups.alter", 3).await;
    let group = unique("group.alter");
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 3)]);

    let admin = admin_client();
    let results = groups::alter_group_offsets(
        &admin,
        &group,
        &[
            (topic.clone(), 0, 2),
            (topic.clone(), 1, 9),
            (topic.clone(), 2, 4),
        ],
        TIMEOUT,
    )
    .await
    .expect("alter_group_offsets");
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    let mut partitions: Vec<i32> = results.iter().map(|r| r.partition).collect();
    partitions.sort();
    assert_eq!(partitions, [0, 1, 2]);

    let listed = groups::list_group_offsets(&admin, &[&group], TIMEOUT)
        .await
        .expect("list_group_offsets");
    assert_eq!(
        committed(&listed[0].offsets),
        [
            (topic.clone(), 0, 2),
            (topic.clone(), 1, 9),
            (topic.clone(), 2, 4)
        ]
    );

    // Refused before anything is sent.
    for bad in [
        vec![],
        vec![(topic.clone(), 0, -1)],
        vec![(topic.clone(), 0, 1), (topic.clone(), 0, 2)],
    ] {
        let err = groups::alter_group_offsets(&admin, &group, &bad, TIMEOUT)
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, GroupAdminError::InvalidArgument(_)),
            "{err:?}"
        );
    }
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alter_group_offsets_is_refused_while_the_group_has_a_live_member() {
    require_broker();
    let topic = topic_with_records("groups.alter.live", 2).await;
    let group = unique("group.alter.live");
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 3)]);
    let member = LiveMember::join(&group, &topic, 2);

    let admin = admin_client();
    let results = groups::alter_group_offsets(
        &admin,
        &group,
        &[(topic.clone(), 0, 1), (topic.clone(), 1, 1)],
        TIMEOUT,
    )
    .await
    .expect("alter_group_offsets");
    assert_eq!(results.len(), 2, "{results:?}");
    for r in &results {
        let error = r.error.as_ref().unwrap_or_else(|| panic!("{r:?}"));
        assert_eq!(error.code, RDKafkaErrorCode::UnknownMemberId, "{r:?}");
    }

    let listed = groups::list_group_offsets(&admin, &[&group], TIMEOUT)
        .await
        .expect("list_group_offsets");
    assert_eq!(
        committed(&listed[0].offsets),
        [(topic.clone(), 0, 7), (topic.clone(), 1, 3)],
        "nothing changed"
    );
    drop(member);
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_group_offsets_removes_only_the_given_commits_of_an_empty_group() {
    require_broker();
    let topic = topic_with_records("groups.delete", 3).await;
    let group = unique("group.delete");
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 3), (&topic, 2, 5)]);

    let admin = admin_client();
    // Not in partition order: the results follow the input.
    let results = groups::delete_group_offsets(
        &admin,
        &group,
        &[(topic.clone(), 2), (topic.clone(), 0)],
        TIMEOUT,
    )
    .await
    .expect("delete_group_offsets");
    let got: Vec<(String, i32)> = results
        .iter()
        .map(|r| (r.topic.clone(), r.partition))
        .collect();
    assert_eq!(got, [(topic.clone(), 2), (topic.clone(), 0)], "{results:?}");
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");

    let listed = groups::list_group_offsets(&admin, &[&group], TIMEOUT)
        .await
        .expect("list_group_offsets");
    assert_eq!(listed[0].error, None, "{listed:?}");
    assert_eq!(
        committed(&listed[0].offsets),
        [(topic.clone(), 1, 3)],
        "only partition 1 keeps its commit: {listed:?}"
    );
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_group_offsets_is_refused_for_a_topic_a_live_member_subscribes_to() {
    require_broker();
    let topic = topic_with_records("groups.delete.live", 2).await;
    let group = unique("group.delete.live");
    commit_offsets(&group, &[(&topic, 0, 7), (&topic, 1, 3)]);
    let member = LiveMember::join(&group, &topic, 2);

    let admin = admin_client();
    describe_stable(&admin, &group).await;
    let result = groups::delete_group_offsets(
        &admin,
        &group,
        &[(topic.clone(), 1), (topic.clone(), 0)],
        TIMEOUT,
    )
    .await;
    match result {
        Ok(results) => {
            let got: Vec<i32> = results.iter().map(|r| r.partition).collect();
            assert_eq!(got, [1, 0], "{results:?}");
            for r in &results {
                assert_eq!(r.topic, topic, "{r:?}");
                let error = r.error.as_ref().unwrap_or_else(|| panic!("{r:?}"));
                assert_eq!(
                    error.code,
                    RDKafkaErrorCode::GroupSubscribedToTopic,
                    "{r:?}"
                );
            }
        }
        Err(err) => assert!(matches!(err, GroupAdminError::Request(_)), "{err:?}"),
    }

    let listed = groups::list_group_offsets(&admin, &[&group], TIMEOUT)
        .await
        .expect("list_group_offsets");
    assert_eq!(
        committed(&listed[0].offsets),
        [(topic.clone(), 0, 7), (topic.clone(), 1, 3)],
        "nothing changed"
    );
    drop(member);
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_group_offsets_refuses_invalid_input_before_sending_anything() {
    // No broker answers here: anything sent would end in a timeout, not in
    // InvalidArgument.
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .expect("admin client");
    let timeout = Duration::from_secs(5);
    let t = "topic".to_string();
    let cases: Vec<(&str, Vec<(String, i32)>)> = vec![
        ("g", vec![]),
        ("g", vec![(t.clone(), -1)]),
        ("g", vec![(t.clone(), 0), (t.clone(), 1), (t.clone(), 0)]),
        ("g", vec![(String::new(), 0)]),
        ("g", vec![("to\0pic".to_string(), 0)]),
        ("", vec![(t.clone(), 0)]),
        ("g\0", vec![(t.clone(), 0)]),
    ];
    for (group, partitions) in cases {
        let started = Instant::now();
        let err = groups::delete_group_offsets(&admin, group, &partitions, timeout)
            .await
            .expect_err("invalid");
        assert!(
            matches!(err, GroupAdminError::InvalidArgument(_)),
            "{group:?} {partitions:?}: {err:?}"
        );
        assert_eq!(err.code(), None);
        assert!(started.elapsed() < Duration::from_secs(1), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_live_group_never_joins_or_disturbs_it() {
    require_broker();
    let topic = topic_with_records("groups.quiet", 2).await;
    let group = unique("group.quiet");
    let member = LiveMember::join(&group, &topic, 2);

    let admin = admin_client();
    let before = describe_stable(&admin, &group).await;
    assert_eq!(before.state, GroupState::Stable, "{before:?}");
    let rebalances = member.rebalances();

    for _ in 0..20 {
        groups::list_group_offsets(&admin, &[&group], TIMEOUT)
            .await
            .expect("list_group_offsets");
        groups::describe_groups(&admin, &[&group], TIMEOUT)
            .await
            .expect("describe_groups");
    }
    groups::list_groups(&admin, TIMEOUT)
        .await
        .expect("list_groups");

    let after = groups::describe_groups(&admin, &[&group], TIMEOUT)
        .await
        .expect("describe_groups")
        .remove(0);
    assert_eq!(after.state, GroupState::Stable, "{after:?}");
    let ids = |d: &GroupDescription| -> BTreeSet<String> {
        d.members.iter().map(|m| m.member_id.clone()).collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert_eq!(after.members.len(), 1);
    // A new generation reaches the member as a rebalance.
    assert_eq!(member.rebalances(), rebalances, "the group rebalanced");

    drop(member);
    delete_topics(&[&topic]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_futures_are_send_and_cancelling_them_is_harmless() {
    require_broker();
    let group = unique("group.send");
    let admin = Arc::new(admin_client());

    // Every call's future is Send (checked at compile time, never run)...
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&groups::list_groups(&admin, TIMEOUT));
    assert_send(&groups::describe_groups(&admin, &["g"], TIMEOUT));
    assert_send(&groups::list_group_offsets(&admin, &["g"], TIMEOUT));
    assert_send(&groups::alter_group_offsets(
        &admin,
        "g",
        &[("t".to_string(), 0, 1)],
        TIMEOUT,
    ));
    assert_send(&groups::delete_group_offsets(
        &admin,
        "g",
        &[("t".to_string(), 0)],
        TIMEOUT,
    ));

    // ...so it runs on any worker.
    let task = {
        let admin = admin.clone();
        let group = group.clone();
        tokio::spawn(async move {
            let describe = groups::describe_groups(&admin, &[&group], TIMEOUT).await;
            let offsets = groups::list_group_offsets(&admin, &[&group], TIMEOUT).await;
            let list = groups::list_groups(&admin, TIMEOUT).await;
            (
                describe.map(|d| d.len()),
                offsets.map(|o| o.len()),
                list.is_ok(),
            )
        })
    };
    let (described, listed, list_ok) = task.await.expect("task");
    assert_eq!(described.expect("describe"), 1);
    assert_eq!(listed.expect("offsets"), 1);
    assert!(list_ok);

    // Dropped mid-flight, many times: the queue and its late results are
    // freed, and the client stays usable.
    for _ in 0..20 {
        let _ = tokio::time::timeout(
            Duration::from_millis(1),
            groups::list_group_offsets(&admin, &[&group, "other"], TIMEOUT),
        )
        .await;
        let _ = tokio::time::timeout(
            Duration::from_millis(1),
            groups::describe_groups(&admin, &[&group], TIMEOUT),
        )
        .await;
    }
    let described = groups::describe_groups(&admin, &[&group], TIMEOUT)
        .await
        .expect("describe after cancellations");
    assert_eq!(described[0].state, GroupState::Dead);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_cluster_fails_the_whole_request_in_time() {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .expect("admin client");
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = groups::list_group_offsets(&admin, &["g"], timeout)
        .await
        .expect_err("no broker");
    assert_eq!(
        err.code(),
        Some(RDKafkaErrorCode::OperationTimedOut),
        "{err:?}"
    );
    assert!(started.elapsed() < timeout + Duration::from_secs(2));

    // ListGroups asks every broker; when none answers, the listing is empty
    // and the per-broker errors say why.
    let (listings, errors) = groups::list_groups(&admin, timeout)
        .await
        .expect("list_groups");
    assert!(listings.is_empty());
    assert!(
        errors
            .iter()
            .any(|e| e.code == RDKafkaErrorCode::OperationTimedOut),
        "{errors:?}"
    );

    // Describe reports the timeout per group.
    let described = groups::describe_groups(&admin, &["g"], timeout)
        .await
        .expect("describe_groups");
    let error = described[0].error.as_ref().expect("per-group error");
    assert_eq!(error.code, RDKafkaErrorCode::OperationTimedOut, "{error:?}");
}
