//! The cluster itself: which brokers are down, which partitions lack
//! replicas, and how leadership is spread. A pure reading of the metadata,
//! the brokers' answers to a connect, and each topic's min.insync.replicas.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::Serialize;
use smm_workers::contract::catalog::{self, Role};

use super::model::{Check, CheckResult, Health};
use crate::kafka::{BrokerInfo, ClusterMetadata, PartitionLayout};

/// One broker, registered or only named in a replica set.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BrokerState {
    pub id: i32,
    /// `host:port`; `None` for a broker the cluster no longer lists.
    pub address: Option<String>,
    /// Listed in the cluster metadata (not fenced by the controller).
    pub registered: bool,
    /// Accepted a connection just now.
    pub answering: bool,
    /// Partitions it leads right now.
    pub leads: usize,
    /// Partitions it holds a replica of.
    pub replicas: usize,
    /// Partitions whose preferred leader it is.
    pub preferred_leader_of: usize,
}

impl BrokerState {
    pub fn is_down(&self) -> bool {
        !(self.registered && self.answering)
    }

    /// "broker 2 (127.0.0.1:39092)", or the id alone when no address is known.
    pub fn name(&self) -> String {
        match &self.address {
            Some(address) => format!("broker {} ({address})", self.id),
            None => format!("broker {}", self.id),
        }
    }
}

/// One topic's partitions that are not fully replicated or not available.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TopicReplication {
    pub topic: String,
    /// Its min.insync.replicas, when it could be read.
    pub min_insync_replicas: Option<i32>,
    /// ISR smaller than the replica set.
    pub under_replicated: Vec<i32>,
    /// ISR smaller than min.insync.replicas: acks=all producers fail here.
    pub under_min_isr: Vec<i32>,
    /// No leader, or a leader that is down: nothing can be read or written.
    pub offline: Vec<i32>,
    /// A main or money topic, where writes failing stops the panel.
    pub essential: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClusterHealth {
    pub brokers: Vec<BrokerState>,
    /// Bootstrap addresses that refused a connection.
    pub bootstrap_not_answering: Vec<String>,
    /// The brokers were probed with a connect; when not, none is called
    /// down for failing it.
    pub probed: bool,
    /// Every topic's min.insync.replicas was read; when not, partitions
    /// under it are not counted.
    pub min_isr_known: bool,
    pub partitions: usize,
    pub under_replicated: usize,
    pub under_min_isr: usize,
    pub offline: usize,
    /// Only the topics with something to report.
    pub topics: Vec<TopicReplication>,
    /// Partitions each answering broker leads.
    pub leaders: BTreeMap<i32, usize>,
    /// Partitions led by a broker other than their preferred leader.
    pub not_preferred_leader: usize,
    /// One broker leads clearly more than its share.
    pub leader_skew: bool,
}

/// Reads the cluster's state from its metadata. `answering` holds, per
/// `host:port`, whether it accepted a connection (`None` when the probe did
/// not finish: then no broker is called down for it); `min_isr` each
/// topic's min.insync.replicas (`None` when they could not be read: then
/// nothing is counted under it, and the replication check says so).
pub fn assess(
    metadata: &ClusterMetadata,
    answering: Option<&BTreeMap<String, bool>>,
    bootstrap: &[String],
    min_isr: Option<&HashMap<String, i32>>,
) -> ClusterHealth {
    let layouts: Vec<(&str, &PartitionLayout)> = metadata
        .topics
        .values()
        .flat_map(|t| t.layout.iter().map(move |p| (t.name.as_str(), p)))
        .collect();
    let brokers = broker_states(metadata, answering, &layouts);
    let down: BTreeSet<i32> = brokers
        .iter()
        .filter(|b| b.is_down())
        .map(|b| b.id)
        .collect();
    let no_min_isr = HashMap::new();
    let mut topics = replication(metadata, &down, min_isr.unwrap_or(&no_min_isr));
    // The worst first: what stops writes, then the panel's own topics.
    topics.sort_by_key(|t| {
        (
            t.offline.is_empty(),
            t.under_min_isr.is_empty(),
            !t.essential,
            t.topic.clone(),
        )
    });
    let count = |pick: fn(&TopicReplication) -> usize| topics.iter().map(pick).sum();
    let leaders: BTreeMap<i32, usize> = brokers
        .iter()
        .filter(|b| !b.is_down())
        .map(|b| (b.id, b.leads))
        .collect();
    let registered: BTreeSet<String> = brokers.iter().filter_map(|b| b.address.clone()).collect();
    ClusterHealth {
        bootstrap_not_answering: answering.map_or_else(Vec::new, |answering| {
            bootstrap
                .iter()
                .filter(|a| !answering.get(*a).copied().unwrap_or(false))
                .filter(|a| !registered.contains(*a))
                .cloned()
                .collect()
        }),
        probed: answering.is_some(),
        min_isr_known: min_isr.is_some(),
        partitions: layouts.len(),
        under_replicated: count(|t| t.under_replicated.len()),
        under_min_isr: count(|t| t.under_min_isr.len()),
        offline: count(|t| t.offline.len()),
        not_preferred_leader: layouts
            .iter()
            .filter(|(_, p)| p.leader.is_some() && p.leader != p.preferred_leader())
            .count(),
        leader_skew: skewed(&leaders),
        leaders,
        topics,
        brokers,
    }
}

fn broker_states(
    metadata: &ClusterMetadata,
    answering: Option<&BTreeMap<String, bool>>,
    layouts: &[(&str, &PartitionLayout)],
) -> Vec<BrokerState> {
    let mut ids: BTreeSet<i32> = metadata.brokers.iter().map(|b| b.id).collect();
    ids.extend(layouts.iter().flat_map(|(_, p)| p.replicas.iter().copied()));
    ids.into_iter()
        .map(|id| {
            let address = metadata
                .brokers
                .iter()
                .find(|b| b.id == id)
                .map(BrokerInfo::address);
            let tally = |hit: &dyn Fn(&PartitionLayout) -> bool| {
                layouts.iter().filter(|(_, p)| hit(p)).count()
            };
            BrokerState {
                id,
                registered: address.is_some(),
                answering: address.as_ref().is_some_and(|a| {
                    answering.is_none_or(|answering| answering.get(a).copied().unwrap_or(false))
                }),
                address,
                leads: tally(&|p| p.leader == Some(id)),
                replicas: tally(&|p| p.replicas.contains(&id)),
                preferred_leader_of: tally(&|p| p.preferred_leader() == Some(id)),
            }
        })
        .collect()
}

fn replication(
    metadata: &ClusterMetadata,
    down: &BTreeSet<i32>,
    min_isr: &HashMap<String, i32>,
) -> Vec<TopicReplication> {
    metadata
        .topics
        .values()
        .filter_map(|t| {
            let wanted = min_isr.get(&t.name).copied();
            // A down broker the controller has not fenced yet still shows
            // in the ISR; it is not in sync with anything.
            let in_sync = |p: &PartitionLayout| p.isr.iter().filter(|b| !down.contains(b)).count();
            let pick = |hit: &dyn Fn(&PartitionLayout) -> bool| -> Vec<i32> {
                t.layout
                    .iter()
                    .filter(|p| hit(p))
                    .map(|p| p.partition)
                    .collect()
            };
            let row = TopicReplication {
                topic: t.name.clone(),
                min_insync_replicas: wanted,
                under_replicated: pick(&|p| in_sync(p) < p.replicas.len()),
                under_min_isr: pick(&|p| {
                    wanted.is_some_and(|w| i32::try_from(in_sync(p)).unwrap_or(i32::MAX) < w)
                }),
                offline: pick(&|p| p.leader.is_none_or(|l| down.contains(&l))),
                essential: catalog::topic_named(&t.name)
                    .is_some_and(|c| c.role == Role::Main || c.is_financial()),
            };
            let reportable = !(row.under_replicated.is_empty()
                && row.under_min_isr.is_empty()
                && row.offline.is_empty());
            reportable.then_some(row)
        })
        .collect()
}

/// A broker leading at least one and a half times its fair share (as one of
/// three does when a restarted broker got none back), and at least two
/// partitions more, is skewed: a handful of partitions always
/// spread a little unevenly, and that is not worth a warning.
fn skewed(leaders: &BTreeMap<i32, usize>) -> bool {
    if leaders.len() < 2 {
        return false;
    }
    let total: usize = leaders.values().sum();
    let fair = total as f64 / leaders.len() as f64;
    leaders
        .values()
        .any(|&n| n as f64 >= fair * 1.5 && n as f64 >= fair + 2.0)
}

impl ClusterHealth {
    pub fn down(&self) -> impl Iterator<Item = &BrokerState> {
        self.brokers.iter().filter(|b| b.is_down())
    }

    /// Offline partitions, or an essential topic under its min ISR, stop
    /// the panel's writes: Down. Any other missing replica: Degraded.
    pub fn health(&self) -> Health {
        let essential_blocked = self
            .topics
            .iter()
            .any(|t| t.essential && !t.under_min_isr.is_empty());
        if self.offline > 0 || essential_blocked {
            Health::Down
        } else if self.under_replicated > 0 || self.under_min_isr > 0 || self.down().count() > 0 {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    pub fn broker_check(&self) -> Check {
        let down: Vec<String> = self
            .down()
            .map(|b| {
                let why = if b.registered {
                    "registered, but does not accept connections"
                } else {
                    "not registered with the controller"
                };
                format!(
                    "{} is down ({why}; leads {}, holds replicas of {} partition(s))",
                    b.name(),
                    b.leads,
                    b.replicas
                )
            })
            .collect();
        let registered = self.brokers.iter().filter(|b| b.registered).count();
        let mut detail = if down.is_empty() {
            format!("{registered} broker(s) registered, all answering")
        } else {
            format!("{registered} registered; {}", down.join("; "))
        };
        if !self.bootstrap_not_answering.is_empty() {
            detail.push_str(&format!(
                "; bootstrap address(es) not accepting connections: {}",
                self.bootstrap_not_answering.join(", ")
            ));
        }
        if !self.probed {
            detail.push_str(
                "; the connect probe did not finish in time, so only fenced brokers are known to be down",
            );
        }
        Check {
            check: "brokers",
            result: if down.is_empty() && self.bootstrap_not_answering.is_empty() {
                CheckResult::Ok
            } else {
                CheckResult::Fail
            },
            detail,
        }
    }

    pub fn replication_check(&self) -> Check {
        let min_isr_note = if self.min_isr_known {
            ""
        } else {
            "; min.insync.replicas could not be read, so partitions under it are not counted"
        };
        if self.under_replicated == 0 && self.under_min_isr == 0 && self.offline == 0 {
            return Check {
                check: "replication",
                result: CheckResult::Ok,
                detail: format!("all {} partitions fully replicated", self.partitions),
            };
        }
        // The table names the first few; the JSON lists every one.
        const NAMED: usize = 5;
        let mut topics: Vec<String> = self
            .topics
            .iter()
            .take(NAMED)
            .map(|t| {
                let mut parts = Vec::new();
                if !t.offline.is_empty() {
                    parts.push(format!("offline {:?}", t.offline));
                }
                if !t.under_min_isr.is_empty() {
                    parts.push(format!(
                        "under min ISR {} {:?}",
                        t.min_insync_replicas.unwrap_or_default(),
                        t.under_min_isr
                    ));
                }
                if !t.under_replicated.is_empty() {
                    parts.push(format!("under-replicated {:?}", t.under_replicated));
                }
                format!("{}: {}", t.topic, parts.join(", "))
            })
            .collect();
        if self.topics.len() > NAMED {
            topics.push(format!(
                "and {} more topic(s) (-o json lists them)",
                self.topics.len() - NAMED
            ));
        }
        Check {
            check: "replication",
            result: match self.health() {
                Health::Down => CheckResult::Fail,
                // Whether an essential topic is below its min ISR is not
                // known, so neither is whether this is Down.
                _ if !self.min_isr_known => CheckResult::Unknown,
                _ => CheckResult::Warn,
            },
            detail: format!(
                "{} of {} partitions under-replicated, {} under min ISR, {} offline; {}{min_isr_note}",
                self.under_replicated,
                self.partitions,
                self.under_min_isr,
                self.offline,
                topics.join("; ")
            ),
        }
    }

    pub fn balance_check(&self) -> Check {
        let spread: Vec<String> = self
            .leaders
            .iter()
            .map(|(id, n)| format!("broker {id}: {n}"))
            .collect();
        let detail = format!(
            "leaders per broker: {}; {} partition(s) not on their preferred leader",
            spread.join(", "),
            self.not_preferred_leader
        );
        Check {
            check: "partition balance",
            result: if self.leader_skew {
                CheckResult::Warn
            } else {
                CheckResult::Ok
            },
            detail: if self.leader_skew {
                format!(
                    "{detail}; leadership is skewed (run a preferred leader election, `kafka-leader-election.sh --election-type preferred --all-topic-partitions`)"
                )
            } else {
                detail
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::{BrokerInfo, TopicMetadata};

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 39090 + id,
        }
    }

    fn topic(name: &str, layout: Vec<PartitionLayout>) -> (String, TopicMetadata) {
        (
            name.to_string(),
            TopicMetadata {
                name: name.to_string(),
                partitions: layout.iter().map(|p| p.partition).collect(),
                leaderless: Vec::new(),
                error: None,
                layout,
            },
        )
    }

    fn partition(
        partition: i32,
        leader: Option<i32>,
        replicas: &[i32],
        isr: &[i32],
    ) -> PartitionLayout {
        PartitionLayout {
            partition,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    fn all_answer(metadata: &ClusterMetadata) -> BTreeMap<String, bool> {
        metadata
            .brokers
            .iter()
            .map(|b| (format!("{}:{}", b.host, b.port), true))
            .collect()
    }

    /// Broker 2 was fenced: gone from the broker list, out of every ISR.
    fn one_broker_fenced() -> ClusterMetadata {
        ClusterMetadata {
            brokers: vec![broker(1), broker(3)],
            topics: [
                topic(
                    "smm.payment.confirmations",
                    vec![
                        partition(0, Some(1), &[1, 2, 3], &[1, 3]),
                        partition(1, Some(3), &[2, 3, 1], &[3, 1]),
                        partition(2, Some(3), &[3, 1, 2], &[3, 1]),
                    ],
                ),
                topic("other", vec![partition(0, Some(1), &[1, 3], &[1, 3])]),
            ]
            .into(),
        }
    }

    #[test]
    fn a_fenced_broker_is_named_and_its_partitions_counted_as_under_replicated() {
        let metadata = one_broker_fenced();
        let min_isr = HashMap::from([("smm.payment.confirmations".to_string(), 2)]);
        let bootstrap = ["127.0.0.1:39091", "127.0.0.1:39092", "127.0.0.1:39093"].map(String::from);
        let mut answering = all_answer(&metadata);
        answering.insert("127.0.0.1:39092".into(), false);
        let cluster = assess(&metadata, Some(&answering), &bootstrap, Some(&min_isr));

        let down: Vec<i32> = cluster.down().map(|b| b.id).collect();
        assert_eq!(down, [2]);
        assert_eq!(cluster.under_replicated, 3);
        assert_eq!(cluster.under_min_isr, 0);
        assert_eq!(cluster.offline, 0);
        assert_eq!(cluster.bootstrap_not_answering, ["127.0.0.1:39092"]);
        assert_eq!(cluster.not_preferred_leader, 1);
        assert_eq!(cluster.health(), Health::Degraded);
        let check = cluster.broker_check();
        assert_eq!(check.result, CheckResult::Fail);
        assert!(
            check.detail.contains("broker 2 is down (not registered with the controller; leads 0, holds replicas of 3 partition(s))"),
            "{}",
            check.detail
        );
        assert!(check.detail.contains("127.0.0.1:39092"), "{}", check.detail);
        assert_eq!(cluster.replication_check().result, CheckResult::Warn);
    }

    #[test]
    fn a_crashed_broker_still_registered_is_down_and_its_partitions_offline() {
        // Right after a SIGKILL: still listed, still leader and in the ISR,
        // but its port refuses.
        let metadata = ClusterMetadata {
            brokers: vec![broker(1), broker(2), broker(3)],
            topics: [topic(
                "smm.payment.confirmations",
                vec![
                    partition(0, Some(2), &[2, 3, 1], &[2, 3, 1]),
                    partition(1, Some(1), &[1, 2, 3], &[1, 2, 3]),
                ],
            )]
            .into(),
        };
        let mut answering = all_answer(&metadata);
        answering.insert("127.0.0.1:39092".into(), false);
        let min_isr = HashMap::from([("smm.payment.confirmations".to_string(), 2)]);
        let cluster = assess(&metadata, Some(&answering), &[], Some(&min_isr));
        assert_eq!(cluster.offline, 1);
        assert_eq!(cluster.under_replicated, 2);
        assert_eq!(cluster.health(), Health::Down);
        let check = cluster.broker_check();
        assert!(
            check.detail.contains("broker 2 (127.0.0.1:39092) is down (registered, but does not accept connections; leads 1, holds replicas of 2 partition(s))"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn an_essential_topic_under_its_min_isr_is_down_and_another_only_degraded() {
        let layout = vec![partition(0, Some(1), &[1, 2, 3], &[1])];
        let metadata = ClusterMetadata {
            brokers: vec![broker(1)],
            topics: [
                topic("smm.payment.confirmations", layout.clone()),
                topic("scratch", layout),
            ]
            .into(),
        };
        let answering = all_answer(&metadata);
        let scratch_only = HashMap::from([("scratch".to_string(), 2)]);
        let cluster = assess(&metadata, Some(&answering), &[], Some(&scratch_only));
        assert_eq!(cluster.under_min_isr, 1);
        assert_eq!(cluster.health(), Health::Degraded);

        let both = HashMap::from([
            ("scratch".to_string(), 2),
            ("smm.payment.confirmations".to_string(), 2),
        ]);
        let cluster = assess(&metadata, Some(&answering), &[], Some(&both));
        assert_eq!(cluster.under_min_isr, 2);
        assert_eq!(cluster.health(), Health::Down);
        assert_eq!(cluster.replication_check().result, CheckResult::Fail);
    }

    #[test]
    fn a_healthy_cluster_reports_full_replication_and_an_even_spread() {
        let metadata = ClusterMetadata {
            brokers: vec![broker(1), broker(2), broker(3)],
            topics: [topic(
                "t",
                (0..6)
                    .map(|p| {
                        let lead = p % 3 + 1;
                        partition(p, Some(lead), &[lead, lead % 3 + 1], &[lead, lead % 3 + 1])
                    })
                    .collect(),
            )]
            .into(),
        };
        let cluster = assess(
            &metadata,
            Some(&all_answer(&metadata)),
            &[],
            Some(&HashMap::new()),
        );
        assert_eq!(cluster.health(), Health::Healthy);
        assert_eq!(cluster.broker_check().result, CheckResult::Ok);
        assert_eq!(
            cluster.replication_check().detail,
            "all 6 partitions fully replicated"
        );
        assert_eq!(cluster.leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
        assert!(!cluster.leader_skew);
    }

    #[test]
    fn leadership_piled_on_one_broker_is_skew() {
        assert!(skewed(&BTreeMap::from([(1, 10), (2, 1), (3, 1)])));
        assert!(!skewed(&BTreeMap::from([(1, 2), (2, 1), (3, 1)])));
        assert!(!skewed(&BTreeMap::from([(1, 12)])));
    }
}
