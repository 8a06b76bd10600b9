//! `smmctl lag`: how far behind each consumer group is, in messages and in
//! time, once or continuously with Burrow-style statuses.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use comfy_table::Cell;
use serde_json::{Value, json};
use smm_workers::contract::catalog::GROUPS;

use crate::Context;
use crate::cli::LagArgs;
use crate::exit::{ExitStatus, UsageError};
use crate::kafka::Kafka;
use crate::kafka::groups;
use crate::lag::status::{Sample, Status, evaluate};
use crate::lag::{
    GroupLag, LagNote, PartitionLag, Request, TopicLag, UncommittedStart, collect, format_seconds,
};
use crate::output::{Printer, Tone, or_dash};

pub async fn run(args: LagArgs, ctx: &Context) -> anyhow::Result<ExitStatus> {
    let kafka = Kafka::from_settings(&ctx.settings)?;
    let (request, unlisted) = build_request(&args, kafka).await?;
    match args.watch {
        None => {
            let groups = measure(kafka, &request, &args, ctx).await?;
            render(&groups, &args, None, ctx)?;
            // The groups a broker that is down coordinates are missing from
            // "every group": show the rest, say so, and never exit 0.
            if let Some(error) = &unlisted {
                ctx.printer.warn(&format!(
                    "a broker did not answer the group listing ({error}): the groups it coordinates are missing above; `smmctl health` names the broker"
                ));
                return Ok(ExitStatus::Failure);
            }
            Ok(exit_for(&groups))
        }
        Some(interval) => watch(kafka, &request, &args, interval, ctx).await,
    }
}

/// The request, and for "every group" the listing error of a broker that
/// did not answer, when one did not.
async fn build_request(args: &LagArgs, kafka: &Kafka) -> anyhow::Result<(Request, Option<String>)> {
    let everyone = args.all_groups || (args.group.is_empty() && !args.topic.is_empty());
    if args.group.iter().any(|g| g.trim().is_empty())
        || args.topic.iter().any(|t| t.trim().is_empty())
    {
        return Err(UsageError::new("--group and --topic need a name").into());
    }
    // The connection check first: an unreachable cluster is one clear
    // error within one timeout.
    kafka.metadata()?;
    let (listings, partial) = groups::list_groups(kafka.admin(), kafka.timeout())
        .await
        .context("unable to list the consumer groups")?;
    let mut unlisted = None;
    let groups = if !args.group.is_empty() {
        dedup(args.group.clone())
    } else if everyone {
        // Without the full list, "every group" is fewer: said, never quiet.
        // `--watch` keeps refreshing, and refuses a partial first look.
        if let Some(error) = partial.first() {
            if args.watch.is_some() {
                return Err(anyhow::anyhow!(
                    "a broker did not answer the group listing ({error}), so some groups would be missing; try again"
                ));
            }
            unlisted = Some(error.to_string());
        }
        let mut names: Vec<String> = listings.iter().map(|l| l.group_id.clone()).collect();
        if !args.topic.is_empty() {
            // Groups that read the topic by the catalog, even before their
            // first commit.
            for g in GROUPS {
                if g.topics().iter().any(|t| args.topic.iter().any(|a| a == t)) {
                    names.push(g.name.to_string());
                }
            }
        }
        dedup(names)
    } else {
        GROUPS.iter().map(|g| g.name.to_string()).collect()
    };
    let request = Request {
        groups,
        topics: args.topic.clone(),
        include_catalog_topics: true,
        time_lag: !args.no_time,
        // Each refresh of --watch lists afresh: states change. A partial
        // listing is asked again (its missing groups then show as Unknown):
        // going straight on to the groups' coordinators while one moves
        // aborted the process in librdkafka (an enq_once refcount
        // assertion) in the cluster suite.
        listings: (args.watch.is_none() && partial.is_empty()).then_some(listings),
        listing_partial: !partial.is_empty(),
        describe_all: false,
    };
    Ok((request, unlisted))
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

async fn measure(
    kafka: &'static Kafka,
    request: &Request,
    args: &LagArgs,
    ctx: &Context,
) -> anyhow::Result<Vec<GroupLag>> {
    let mut groups = collect(kafka, request, &ctx.settings.thresholds).await?;
    if !args.topic.is_empty() && args.group.is_empty() {
        // Asked about a topic: the groups that have nothing on it are noise.
        groups.retain(|g| !g.partitions.is_empty());
    }
    Ok(groups)
}

/// Over a threshold, unable to tell, or at a broken position: either way
/// cron should hear of it.
fn exit_for(groups: &[GroupLag]) -> ExitStatus {
    if groups
        .iter()
        .any(|g| g.over_threshold() || g.incomplete().is_some() || g.anomaly().is_some())
    {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}

/// Statuses from `--watch`, by group and by partition.
struct Statuses {
    groups: HashMap<String, Status>,
    partitions: HashMap<(String, String, i32), Status>,
}

impl Statuses {
    fn partition(&self, group: &str, topic: &str, partition: i32) -> Status {
        self.partitions
            .get(&(group.to_string(), topic.to_string(), partition))
            .copied()
            .unwrap_or(Status::Unknown)
    }

    fn topic(&self, group: &GroupLag, topic: &str) -> Status {
        Status::worst(
            group
                .partitions
                .iter()
                .filter(|p| p.topic == topic)
                .map(|p| self.partition(&group.group, topic, p.partition)),
        )
    }
}

async fn watch(
    kafka: &'static Kafka,
    request: &Request,
    args: &LagArgs,
    interval: Duration,
    ctx: &Context,
) -> anyhow::Result<ExitStatus> {
    let window = args.window as usize;
    let window_ms =
        u64::try_from(interval.as_millis().saturating_mul(window as u128 - 1)).unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut history: HashMap<(String, String, i32), VecDeque<Sample>> = HashMap::new();
    let clear = ctx.printer.stdout_is_terminal() && !ctx.printer.is_json();
    let mut rounds = 0u32;
    loop {
        let groups = measure(kafka, request, args, ctx).await?;
        let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut statuses = Statuses {
            groups: HashMap::new(),
            partitions: HashMap::new(),
        };
        for g in &groups {
            for p in &g.partitions {
                let key = (g.group.clone(), p.topic.clone(), p.partition);
                let samples = history.entry(key.clone()).or_default();
                samples.push_back(Sample {
                    at_ms,
                    committed: p.committed,
                    lag: p.lag,
                    owned: p.member.is_some(),
                    broken: p.note.is_some_and(|n| n.is_anomaly()),
                });
                while samples.len() > window {
                    samples.pop_front();
                }
                let status = evaluate(samples.make_contiguous(), window_ms);
                statuses.partitions.insert(key, status);
            }
            let worst = Status::worst(
                g.partitions
                    .iter()
                    .map(|p| statuses.partition(&g.group, &p.topic, p.partition)),
            );
            statuses.groups.insert(g.group.clone(), worst);
        }
        if clear {
            // Home the cursor and clear the screen, as `watch` does.
            ctx.printer.raw("\x1b[H\x1b[2J");
        }
        if !ctx.printer.is_json() {
            ctx.printer.line(&format!(
                "every {}, window of {} samples; {}   (Ctrl-C to stop)",
                crate::kafka::humanize(interval),
                window,
                jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        render(&groups, args, Some(&statuses), ctx)?;
        let last = exit_for(&groups);
        rounds += 1;
        if args.count.is_some_and(|n| rounds >= n) {
            return Ok(last);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(last),
        }
    }
}

fn threshold_note(g: &GroupLag) -> String {
    let mut notes = Vec::new();
    if g.over_threshold() {
        notes.push(format!("over threshold {}", g.threshold));
    }
    if let Some(why) = g.incomplete() {
        notes.push(format!("incomplete: {why}"));
    }
    if let Some(what) = g.anomaly() {
        notes.push(what);
    }
    if g.partitions.is_empty() {
        notes.push(if g.state == groups::GroupState::Dead {
            "no such group on the cluster".to_string()
        } else {
            "no committed offsets".to_string()
        });
    }
    notes.join("; ")
}

fn seconds(value: Option<f64>) -> String {
    value.map(format_seconds).unwrap_or_else(|| "-".into())
}

fn render(
    groups: &[GroupLag],
    args: &LagArgs,
    statuses: Option<&Statuses>,
    ctx: &Context,
) -> anyhow::Result<()> {
    let p = &ctx.printer;
    if p.is_json() {
        let doc = to_json(groups, statuses);
        if statuses.is_some() {
            p.line(&serde_json::to_string(&doc)?);
        } else {
            p.json(&doc)?;
        }
        return Ok(());
    }
    if groups.is_empty() {
        p.line("No consumer groups matched.");
        return Ok(());
    }
    let headers = headers(args, statuses.is_some());
    let mut table = p.table(headers.iter().copied());
    let rows = Rows {
        printer: p,
        time: !args.no_time,
        statuses,
        columns: headers.len(),
    };
    for g in groups {
        if args.summary {
            table.add_row(rows.summary(g));
        } else if g.partitions.is_empty() {
            table.add_row(rows.without_partitions(g));
        } else if args.partitions {
            for part in &g.partitions {
                table.add_row(rows.partition(g, part));
            }
        } else {
            for topic in g.topics() {
                table.add_row(rows.topic(g, &topic));
            }
        }
    }
    let numeric: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            matches!(
                **h,
                "MEMBERS"
                    | "TOPICS"
                    | "LAG"
                    | "LAG-TIME"
                    | "THRESHOLD"
                    | "PARTITION"
                    | "PARTITIONS"
                    | "COMMITTED"
                    | "LOG-START"
                    | "LOG-END"
            )
        })
        .map(|(i, _)| i)
        .collect();
    p.align_right(&mut table, &numeric);
    p.print_table(&table);
    let over: Vec<&str> = groups
        .iter()
        .filter(|g| g.over_threshold())
        .map(|g| g.group.as_str())
        .collect();
    if !over.is_empty() {
        p.note(&format!("over the lag threshold: {}", over.join(", ")));
    }
    for g in groups {
        if let Some(what) = g.anomaly() {
            p.warn(&format!("{}: {what}", g.group));
        }
    }
    Ok(())
}

/// The columns of the table: one view's, without LAG-TIME under
/// `--no-time`, with STATUS under `--watch`.
fn headers(args: &LagArgs, watching: bool) -> Vec<&'static str> {
    let mut headers: Vec<&str> = if args.summary {
        vec![
            "GROUP",
            "STATE",
            "MEMBERS",
            "TOPICS",
            "LAG",
            "LAG-TIME",
            "THRESHOLD",
        ]
    } else if args.partitions {
        vec![
            "GROUP",
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "LOG-START",
            "LOG-END",
            "LAG",
            "LAG-TIME",
            "CLIENT-ID",
            "HOST",
        ]
    } else {
        vec!["GROUP", "TOPIC", "PARTITIONS", "LAG", "LAG-TIME"]
    };
    if args.no_time {
        headers.retain(|h| *h != "LAG-TIME");
    }
    if watching {
        headers.push("STATUS");
    }
    headers.push("NOTE");
    headers
}

/// Builds the table's rows, one view at a time.
struct Rows<'a> {
    printer: &'a Printer,
    /// The LAG-TIME column is shown.
    time: bool,
    statuses: Option<&'a Statuses>,
    columns: usize,
}

impl Rows<'_> {
    fn status_cell(&self, status: Status) -> Cell {
        let tone = match status {
            Status::Ok => Tone::Good,
            Status::Unknown => Tone::Plain,
            Status::Warn => Tone::Warn,
            _ => Tone::Bad,
        };
        self.printer.cell(status.label(), tone)
    }

    fn group_status(&self, g: &GroupLag) -> Option<Cell> {
        self.statuses
            .map(|s| self.status_cell(s.groups.get(&g.group).copied().unwrap_or(Status::Unknown)))
    }

    fn group_tone(g: &GroupLag) -> Tone {
        if g.over_threshold() {
            Tone::Bad
        } else {
            Tone::Plain
        }
    }

    fn summary(&self, g: &GroupLag) -> Vec<Cell> {
        let p = self.printer;
        let group_tone = Self::group_tone(g);
        let mut row = vec![
            p.cell(g.group.as_str(), group_tone),
            p.cell(g.state.as_str(), Tone::Plain),
            p.cell(g.members.len().to_string(), Tone::Plain),
            p.cell(g.topics().len().to_string(), Tone::Plain),
            p.cell(or_dash(g.total_lag()), group_tone),
        ];
        if self.time {
            row.push(p.cell(seconds(g.max_lag_seconds()), Tone::Plain));
        }
        row.push(p.cell(g.threshold.to_string(), Tone::Plain));
        row.extend(self.group_status(g));
        row.push(p.cell(threshold_note(g), group_tone));
        row
    }

    /// A group with no partitions to show: its name, dashes, and why.
    fn without_partitions(&self, g: &GroupLag) -> Vec<Cell> {
        let p = self.printer;
        let mut row = vec![
            p.cell(g.group.as_str(), Self::group_tone(g)),
            p.cell("-", Tone::Plain),
        ];
        let blanks = self.columns - 3 - usize::from(self.statuses.is_some());
        row.extend((0..blanks).map(|_| p.cell("-", Tone::Plain)));
        row.extend(self.group_status(g));
        row.push(p.cell(threshold_note(g), Tone::Plain));
        row
    }

    fn partition(&self, g: &GroupLag, part: &PartitionLag) -> Vec<Cell> {
        let p = self.printer;
        let group_tone = Self::group_tone(g);
        let mut row = vec![
            p.cell(g.group.as_str(), group_tone),
            p.cell(part.topic.as_str(), Tone::Plain),
            p.cell(part.partition.to_string(), Tone::Plain),
            p.cell(or_dash(part.committed), Tone::Plain),
            p.cell(or_dash(part.log_start), Tone::Plain),
            p.cell(or_dash(part.log_end), Tone::Plain),
            p.cell(or_dash(part.lag), group_tone),
        ];
        if self.time {
            row.push(p.cell(seconds(part.lag_seconds), Tone::Plain));
        }
        row.push(p.cell(
            or_dash(part.member.as_ref().map(|m| m.client_id.as_str())),
            Tone::Plain,
        ));
        row.push(p.cell(
            or_dash(part.member.as_ref().map(|m| m.host.as_str())),
            Tone::Plain,
        ));
        if let Some(s) = self.statuses {
            row.push(self.status_cell(s.partition(&g.group, &part.topic, part.partition)));
        }
        row.push(p.cell(part.note_text().unwrap_or_default(), Tone::Plain));
        row
    }

    fn topic(&self, g: &GroupLag, topic: &TopicLag) -> Vec<Cell> {
        let p = self.printer;
        let tone = if topic.lag.is_some_and(|l| l >= g.threshold) {
            Tone::Bad
        } else {
            Tone::Plain
        };
        let mut row = vec![
            p.cell(g.group.as_str(), Self::group_tone(g)),
            p.cell(topic.topic.as_str(), Tone::Plain),
            p.cell(topic.partitions.to_string(), Tone::Plain),
            p.cell(or_dash(topic.lag), tone),
        ];
        if self.time {
            row.push(p.cell(seconds(topic.lag_seconds), Tone::Plain));
        }
        if let Some(s) = self.statuses {
            row.push(self.status_cell(s.topic(g, &topic.topic)));
        }
        row.push(p.cell(topic_notes(g, topic), tone));
        row
    }
}

/// The NOTE of one group and topic: its threshold, the partitions whose
/// position is unusual, and those without a committed offset.
fn topic_notes(g: &GroupLag, topic: &TopicLag) -> String {
    let mut notes = Vec::new();
    if topic.lag.is_some_and(|l| l >= g.threshold) {
        notes.push(format!("over threshold {}", g.threshold));
    } else if g.over_threshold() && topic.lag.is_some_and(|l| l > 0) {
        notes.push(format!("group over threshold {}", g.threshold));
    }
    // The partition view explains these one by one; here, count them.
    let mut unusual: BTreeMap<String, usize> = BTreeMap::new();
    for part in g.partitions.iter().filter(|p| p.topic == topic.topic) {
        if part
            .note
            .is_some_and(|n| !matches!(n, LagNote::NoCommit | LagNote::NoCommitFromLogStart))
            && let Some(note) = part.note_text()
        {
            *unusual.entry(note).or_default() += 1;
        }
    }
    for (note, count) in unusual {
        notes.push(format!("{count} partition(s): {note}"));
    }
    // Say how those partitions were counted: from the log start for a group
    // that reads from the earliest, not at all for one whose start is
    // unknown.
    let counted = match UncommittedStart::of_group(&g.group) {
        UncommittedStart::LogStart => " (lag counted from the log start)",
        UncommittedStart::Unknown => "",
    };
    if topic.uncommitted_partitions == topic.partitions {
        notes.push(format!("no committed offset{counted}"));
    } else if topic.uncommitted_partitions > 0 {
        notes.push(format!(
            "{} of {} partitions without a committed offset{counted}",
            topic.uncommitted_partitions, topic.partitions
        ));
    }
    notes.join("; ")
}

/// The stable JSON schema, documented in docs/contracts.md and
/// schemas/lag.schema.json.
fn to_json(groups: &[GroupLag], statuses: Option<&Statuses>) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut group = json!({
                "group": g.group,
                "seed": g.seed,
                "state": g.state.as_str(),
                "members": g.members.len(),
                "threshold": g.threshold,
                "total_lag": g.total_lag(),
                "max_lag_seconds": g.max_lag_seconds(),
                "over_threshold": g.over_threshold(),
                "error": g.error,
                "incomplete": g.incomplete(),
                "anomaly": g.anomaly(),
                "topics": g.topics().iter().map(|t| json!({
                    "topic": t.topic,
                    "partitions": t.partitions,
                    "lag": t.lag,
                    "lag_seconds": t.lag_seconds,
                    "uncommitted_partitions": t.uncommitted_partitions,
                })).collect::<Vec<_>>(),
                "partitions": g.partitions.iter().map(|p| {
                    let mut part = p.to_json();
                    if let Some(s) = statuses {
                        part["status"] = json!(s.partition(&g.group, &p.topic, p.partition));
                    }
                    part
                }).collect::<Vec<_>>(),
            });
            if let Some(s) = statuses {
                group["status"] = json!(s.groups.get(&g.group).copied().unwrap_or(Status::Unknown));
            }
            group
        })
        .collect();
    json!({
        "taken_at": jiff::Timestamp::now().to_string(),
        "groups": groups,
    })
}
