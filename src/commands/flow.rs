//! The one way a destructive command acts.
//!
//! Every command that changes the cluster (`offsets reset`, `records
//! delete`, `groups delete`, `topics delete`, `dlq replay`, `dlq drain`)
//! reads the cluster, builds a plan and its guards from those reads, shows
//! the plan, and then hands it here. This module decides, the same way for
//! all of them, whether the plan is only previewed, refused, empty, or
//! confirmed and carried out, and leaves the audit line once it was.

use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};
use serde::Serialize;

use crate::Context;
use crate::audit::{AUDIT_TOPIC, Trail};
use crate::cli::ApplyArgs;
use crate::commands::confirm;
use crate::exit::{ExitStatus, Refusal, status_of};
use crate::kafka::{AdminOutcome, Kafka};

/// What a command would do, ready for the decision.
pub struct Proposal {
    /// `dlq drain`, `offsets reset`, …: the audit trail's name for it.
    pub command: &'static str,
    /// The plan as its JSON preview shows it; it goes into the audit line.
    pub plan: serde_json::Value,
    /// How many records, offsets, groups or topics would change. Zero means
    /// there is nothing to do.
    pub changes: usize,
    /// The confirmation question: what will change, in one sentence.
    pub question: String,
    /// What `--execute` does, for the preview's last line ("deletes 51
    /// record(s)").
    pub action: String,
    /// Reasons to stop that `--force` overrides (a financial topic, a group
    /// that has not read what would go).
    pub needs_force: Vec<String>,
    /// Whether `--force` was given.
    pub force: bool,
    /// Reasons to stop that no flag overrides, each a whole message that
    /// ends by saying nothing was changed.
    pub refusals: Vec<String>,
}

/// What the command does next.
pub enum Decision {
    /// No `--execute`: the preview was all.
    Preview,
    /// Confirmed, but the plan changes nothing.
    Nothing,
    /// Act, then hand the result to the trail.
    Act(Box<Trail>),
}

/// Refuses on a read-only profile: every command that writes to the
/// cluster calls this before it writes.
pub fn ensure_writable(ctx: &Context, what: &str) -> anyhow::Result<()> {
    if !ctx.settings.read_only {
        return Ok(());
    }
    let profile = ctx.settings.profile.as_ref().map_or_else(
        || "the active profile".to_owned(),
        |p| format!("profile {}", p.value),
    );
    Err(Refusal::new(format!(
        "{profile} is read-only (read_only = true), and {what} writes to the cluster. Nothing was changed."
    ))
    .into())
}

/// Previews, refuses, or confirms and opens the audit trail, in that order.
/// The command has already printed its plan.
pub async fn decide(
    ctx: &Context,
    kafka: &Kafka,
    apply: &ApplyArgs,
    proposal: Proposal,
) -> anyhow::Result<Decision> {
    if !apply.execute {
        for reason in &proposal.refusals {
            ctx.printer
                .warn(&format!("--execute will refuse: {reason}"));
        }
        for reason in &proposal.needs_force {
            ctx.printer.warn(&if proposal.force {
                format!("{reason} (--force given)")
            } else {
                format!("{reason}: --force is needed")
            });
        }
        if ctx.settings.read_only {
            ctx.printer
                .warn("this profile is read-only: --execute will refuse");
        }
        ctx.printer.note(&format!(
            "Preview only: nothing was changed. Run again with --execute to {}.",
            proposal.action
        ));
        return Ok(Decision::Preview);
    }
    ensure_writable(ctx, proposal.command)?;
    if !proposal.refusals.is_empty() {
        return Err(Refusal::new(proposal.refusals.join("\n")).into());
    }
    if !proposal.needs_force.is_empty() && !proposal.force {
        return Err(Refusal::new(format!(
            "refusing without --force: {}. Nothing was changed.",
            proposal.needs_force.join("; ")
        ))
        .into());
    }
    if proposal.changes == 0 {
        ctx.printer.note("Nothing to change.");
        return Ok(Decision::Nothing);
    }
    confirm(&ctx.printer, &proposal.question, apply.yes)?;
    let topic = if ctx.settings.audit_topic {
        Some(audit_producer(kafka).await.map_err(|e| {
            Refusal::new(format!(
                "cannot reach the audit topic {AUDIT_TOPIC}: {e:#}. Nothing was changed."
            ))
        })?)
    } else {
        None
    };
    let trail = Trail::open(&ctx.settings, proposal.command, proposal.plan, topic)?;
    Ok(Decision::Act(Box::new(trail)))
}

/// Leaves the audit line for what the command did, or for the error that
/// stopped it part way, and passes the outcome on. The error's line matters
/// most: something may have changed before it.
pub fn conclude<R: Serialize>(
    trail: Box<Trail>,
    outcome: anyhow::Result<(R, ExitStatus)>,
) -> anyhow::Result<ExitStatus> {
    match outcome {
        Ok((report, status)) => {
            trail.record(serde_json::to_value(&report)?, status)?;
            Ok(status)
        }
        Err(error) => {
            let status = status_of(&error);
            let result = serde_json::json!({ "error": format!("{error:#}") });
            match trail.record(result, status) {
                Ok(()) => Err(error),
                Err(unrecorded) => Err(error.context(format!("{unrecorded:#}"))),
            }
        }
    }
}

/// The audit topic's producer, creating the topic on first use.
async fn audit_producer(kafka: &Kafka) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    let metadata = kafka.metadata()?;
    if !metadata.topics.contains_key(AUDIT_TOPIC) {
        // Kept long: the trail is what an incident review reads months
        // later.
        let configs = [("retention.ms", "31536000000".to_string())];
        let outcome = kafka
            .create_topics(&[(AUDIT_TOPIC.to_string(), 1, -1)], &configs)
            .await?;
        if let Some((_, AdminOutcome::Failed(why))) = outcome.first()
            && !why.contains("already exists")
        {
            anyhow::bail!("cannot create {AUDIT_TOPIC}: {why}");
        }
    }
    Ok(kafka
        .producer_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()?)
}
