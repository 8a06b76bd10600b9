//! Every consumer group of the cluster as a delete must see it: where each
//! one has committed, and which partitions the live ones' members own.
//! Deleting records is safe only if no group still needs them, so a group
//! the survey cannot read is a refusal, never a group taken for absent.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::exit::Refusal;
use crate::kafka::Kafka;
use crate::kafka::groups::{self, GroupState};

/// A topic and partition.
pub type PartitionKey = (String, i32);

#[derive(Debug, Default)]
pub struct GroupSurvey {
    /// Each partition's commits: (group, committed offset).
    pub committed: BTreeMap<PartitionKey, Vec<(String, i64)>>,
    /// Each partition's live owners: the groups one of whose members has
    /// it assigned.
    pub owners: BTreeMap<PartitionKey, Vec<String>>,
}

impl GroupSurvey {
    /// Lists the groups, reads every group's commits and describes the
    /// live ones. Refuses when a broker does not answer the listing or a
    /// group's commits cannot be read: the records might be unread.
    pub async fn take(kafka: &Kafka) -> anyhow::Result<GroupSurvey> {
        let (listings, partial) = groups::list_groups(kafka.admin(), kafka.timeout())
            .await
            .context("unable to list the consumer groups to check for unread records")?;
        if let Some(error) = partial.first() {
            return Err(Refusal::new(format!(
                "cannot tell which groups have read these records: a broker did not answer the group listing ({error}). Nothing was deleted."
            ))
            .into());
        }
        let names: Vec<&str> = listings.iter().map(|l| l.group_id.as_str()).collect();
        let offsets = if names.is_empty() {
            Vec::new()
        } else {
            groups::list_group_offsets(kafka.offsets_client(), &names, kafka.timeout())
                .await
                .context("unable to read the groups' committed offsets")?
        };
        let unreadable: Vec<String> = offsets
            .iter()
            .filter(|g| g.error.is_some() || g.offsets.iter().any(|c| c.error.is_some()))
            .map(|g| g.group_id.clone())
            .collect();
        if !unreadable.is_empty() {
            return Err(Refusal::new(format!(
                "cannot read the committed offsets of {}, so cannot tell whether they have read these records. Nothing was deleted.",
                unreadable.join(", ")
            ))
            .into());
        }
        let live: Vec<&str> = listings
            .iter()
            .filter(|l| !matches!(l.state, GroupState::Empty | GroupState::Dead))
            .map(|l| l.group_id.as_str())
            .collect();
        let descriptions = if live.is_empty() {
            Vec::new()
        } else {
            groups::describe_groups(kafka.admin(), &live, kafka.timeout())
                .await
                .context("unable to describe the live consumer groups")?
        };

        let mut survey = GroupSurvey::default();
        for group in &offsets {
            for c in &group.offsets {
                if let Some(offset) = c.offset {
                    survey
                        .committed
                        .entry((c.topic.clone(), c.partition))
                        .or_default()
                        .push((group.group_id.clone(), offset));
                }
            }
        }
        for d in &descriptions {
            for m in &d.members {
                for (topic, partition) in &m.assignment {
                    let owners = survey
                        .owners
                        .entry((topic.clone(), *partition))
                        .or_default();
                    if !owners.contains(&d.group_id) {
                        owners.push(d.group_id.clone());
                    }
                }
            }
        }
        Ok(survey)
    }
}
