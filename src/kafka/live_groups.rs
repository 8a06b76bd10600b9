//! Whether a consumer group may be changed now: the one check every
//! command that moves, resets or deletes a group's offsets makes first.

use std::fmt;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use smm_kafka_ffi::groups::{GroupAdminError, GroupDescription, describe_groups};

use super::Kafka;
use crate::exit::Refusal;

/// Why `groups` must not be changed now, one sentence per group: it has
/// live members, or whether it has any cannot be told (the describe call
/// failed, or failed for that group). Empty when every group is safe to
/// change. `doing` completes "refusing to …": "reset the offsets of".
///
/// A group that cannot be described is refused, never taken for an empty
/// one: changing the offsets of a group whose consumers are running makes
/// them fight over its position.
pub async fn live_group_refusals(
    admin: &AdminClient<impl ClientContext>,
    groups: &[&str],
    timeout: Duration,
    doing: &str,
) -> Vec<String> {
    if groups.is_empty() {
        return Vec::new();
    }
    let described = describe_groups(admin, groups, timeout).await;
    live_refusals(groups, &described, doing)
}

/// [`live_group_refusals`] for one group, as the command's error: a
/// [`Refusal`] (exit 1) that names the group and why.
pub async fn refuse_live_group(
    admin: &AdminClient<impl ClientContext>,
    group: &str,
    timeout: Duration,
    doing: &str,
) -> anyhow::Result<()> {
    let refusals = live_group_refusals(admin, &[group], timeout, doing).await;
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Refusal::new(refusals.join("\n")).into())
    }
}

/// The refusals one DescribeGroups answer calls for; see
/// [`live_group_refusals`].
pub fn live_refusals(
    groups: &[&str],
    described: &Result<Vec<GroupDescription>, GroupAdminError>,
    doing: &str,
) -> Vec<String> {
    let unknown = |group: &str, why: &dyn fmt::Display| {
        format!(
            "refusing to {doing} group {group}: cannot tell whether it has live members \
             ({why}). Nothing was changed."
        )
    };
    let descriptions = match described {
        Ok(descriptions) => descriptions,
        Err(e) => return groups.iter().map(|g| unknown(g, e)).collect(),
    };
    let mut refusals = Vec::new();
    for &group in groups {
        let Some(d) = descriptions.iter().find(|d| d.group_id == group) else {
            refusals.push(unknown(group, &"the brokers' answer did not include it"));
            continue;
        };
        if let Some(e) = d.error.as_ref() {
            refusals.push(unknown(group, e));
            continue;
        }
        if d.members.is_empty() {
            continue;
        }
        let list: Vec<String> = d
            .members
            .iter()
            .map(|m| format!("{} (client {}, host {})", m.member_id, m.client_id, m.host))
            .collect();
        refusals.push(format!(
            "refusing to {doing} group {group}: it has live members ({}): {}. Stop them first. \
             Nothing was changed.",
            d.members.len(),
            list.join(", ")
        ));
    }
    refusals
}

/// Refuses to move a group that has live members, or whose members cannot
/// be told: the broker would reject the commit, or worse, the members would
/// fight the replay over offsets.
pub(crate) async fn refuse_to_move_live_group(kafka: &Kafka, group: &str) -> anyhow::Result<()> {
    refuse_live_group(kafka.admin(), group, kafka.timeout(), MOVE_GROUP).await
}

/// The refusals a live (or undescribable) processing group earns, for a
/// command's guards.
pub(crate) async fn refusals_to_move(kafka: &Kafka, group: &str) -> Vec<String> {
    live_group_refusals(kafka.admin(), &[group], kafka.timeout(), MOVE_GROUP).await
}

const MOVE_GROUP: &str = "move the offsets of";

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;
    use smm_kafka_ffi::groups::{AdminError, GroupMember, GroupState, GroupType};

    use super::*;

    fn described(group: &str, members: &[&str], error: Option<AdminError>) -> GroupDescription {
        GroupDescription {
            group_id: group.into(),
            state: if members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            },
            is_simple: false,
            group_type: GroupType::Classic,
            partition_assignor: String::new(),
            coordinator: None,
            members: members
                .iter()
                .map(|id| GroupMember {
                    member_id: (*id).into(),
                    client_id: "worker".into(),
                    host: "/10.0.0.7".into(),
                    group_instance_id: None,
                    assignment: Vec::new(),
                })
                .collect(),
            error,
        }
    }

    #[test]
    fn a_group_that_cannot_be_described_is_refused_not_taken_for_empty() {
        let doing = "reset the offsets of";
        let refusals = |answer| live_refusals(&["g"], &answer, doing);
        assert!(refusals(Ok(vec![described("g", &[], None)])).is_empty());

        let live = refusals(Ok(vec![described("g", &["m-1"], None)]));
        assert_eq!(
            live,
            [
                "refusing to reset the offsets of group g: it has live members (1): m-1 \
              (client worker, host /10.0.0.7). Stop them first. Nothing was changed."
            ]
        );

        let coordinator = AdminError {
            code: RDKafkaErrorCode::NotCoordinator,
            message: "Broker: Not coordinator".into(),
        };
        let failed_group = refusals(Ok(vec![described("g", &[], Some(coordinator))]));
        assert_eq!(
            failed_group,
            [
                "refusing to reset the offsets of group g: cannot tell whether it has live members \
              (Broker: Not coordinator). Nothing was changed."
            ]
        );

        let failed_call = refusals(Err(GroupAdminError::Timeout(Duration::from_secs(5))));
        assert_eq!(failed_call.len(), 1);
        assert!(
            failed_call[0].contains("group g: cannot tell whether it has live members (no answer"),
            "{failed_call:?}"
        );
        assert_eq!(
            refusals(Ok(Vec::new())).len(),
            1,
            "a group left out is refused"
        );

        let two = live_refusals(
            &["a", "b"],
            &Ok(vec![
                described("a", &[], None),
                described("b", &["m-2"], None),
            ]),
            "delete",
        );
        assert_eq!(two.len(), 1);
        assert!(two[0].starts_with("refusing to delete group b:"), "{two:?}");
    }
}
