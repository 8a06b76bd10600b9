//! The audit trail: one JSON line for every destructive command that was
//! executed, in a local file and, when the profile asks, on a topic.
//!
//! The trail is opened before the command changes anything, so a trail
//! that cannot be written stops the command while nothing has changed yet.
//! Previews write nothing.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use serde::{Deserialize, Serialize};

use crate::config::{Settings, is_secret_key, mask_url_password};
use crate::exit::{ExitStatus, Refusal};

/// The topic the trail also goes to when a profile sets `audit_topic`.
pub const AUDIT_TOPIC: &str = "_smmctl.audit";

/// One executed destructive command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditLine {
    pub time: String,
    pub user: String,
    pub host: String,
    pub profile: Option<String>,
    pub brokers: String,
    /// The command line as typed, secrets masked.
    pub command_line: Vec<String>,
    /// `dlq drain`, `offsets reset`, …
    pub command: String,
    /// What the command planned to change, as its preview showed it.
    pub plan: serde_json::Value,
    /// What it changed, as its report says.
    pub result: serde_json::Value,
    pub exit_code: u8,
}

/// Where the local trail lives: `$XDG_STATE_HOME/smmctl/audit.jsonl`.
/// `SMM_AUDIT_FILE` moves it, for tests and for hosts that collect a
/// fixed path.
pub fn audit_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SMM_AUDIT_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("smmctl")
        .join("audit.jsonl")
}

/// A trail opened before the command acts.
pub struct Trail {
    command: &'static str,
    path: PathBuf,
    file: File,
    topic: Option<ThreadedProducer<DefaultProducerContext>>,
    template: AuditLine,
}

impl Trail {
    /// Opens the local file (and the topic's producer, when the profile
    /// asks for it), or refuses: a command that cannot leave a trail does
    /// not act.
    pub fn open(
        settings: &Settings,
        command: &'static str,
        plan: serde_json::Value,
        topic: Option<ThreadedProducer<DefaultProducerContext>>,
    ) -> anyhow::Result<Trail> {
        let path = audit_path();
        let file = open_append(&path).map_err(|e| {
            Refusal::new(format!(
                "cannot write the audit trail {}: {e}. Nothing was changed.",
                path.display()
            ))
        })?;
        Ok(Trail {
            command,
            path,
            file,
            topic,
            template: AuditLine {
                time: String::new(),
                user: os_user(),
                host: host_name(),
                profile: settings.profile.as_ref().map(|p| p.value.clone()),
                brokers: settings.brokers.value.clone(),
                command_line: masked_command_line(std::env::args()),
                command: command.to_owned(),
                plan,
                result: serde_json::Value::Null,
                exit_code: 0,
            },
        })
    }

    /// Appends the line for what was done. A failure here is reported: the
    /// change has happened, and the operator must know the trail missed it.
    pub fn record(mut self, result: serde_json::Value, status: ExitStatus) -> anyhow::Result<()> {
        let mut line = self.template.clone();
        line.time = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        line.result = result;
        line.exit_code = status.code();
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| {
                format!(
                    "{} ran, but its audit line could not be written to {}",
                    self.command,
                    self.path.display()
                )
            })?;
        if let Some(producer) = &self.topic {
            let record = BaseRecord::<str, str>::to(AUDIT_TOPIC)
                .key(self.command)
                .payload(text.trim_end());
            producer.send(record).map_err(|(e, _)| {
                anyhow::anyhow!(
                    "{} ran, but its audit line did not reach {AUDIT_TOPIC}: {e}",
                    self.command
                )
            })?;
            producer.flush(Duration::from_secs(10)).map_err(|e| {
                anyhow::anyhow!(
                    "{} ran, but its audit line did not reach {AUDIT_TOPIC}: {e}",
                    self.command
                )
            })?;
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        // Cron and systemd may run without USER; the numeric id is always
        // there.
        .unwrap_or_else(|| format!("uid {}", uid_from_proc()))
}

fn uid_from_proc() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "-".into())
}

/// The command line with every secret masked: `-X sasl.password=…`,
/// `--database-url postgres://u:pw@…`, and any `--flag value` whose flag
/// names a secret.
pub fn masked_command_line(args: impl IntoIterator<Item = String>) -> Vec<String> {
    // Flags spell with hyphens what settings spell with underscores:
    // `--api-key` is `api_key`.
    let secret = |name: &str| is_secret_key(&name.replace('-', "_"));
    let mut out = Vec::new();
    let mut previous_secret = false;
    for arg in args {
        let masked = if previous_secret {
            "****".to_owned()
        } else if let Some((key, _)) = arg.split_once('=').filter(|(k, _)| secret(k)) {
            format!("{key}=****")
        } else {
            mask_url_password(&arg)
        };
        previous_secret = arg.starts_with("--") && !arg.contains('=') && secret(&arg);
        out.push(masked);
    }
    out
}

/// The trail, oldest first, for `smmctl audit`.
pub fn read_trail(path: &Path) -> anyhow::Result<Vec<AuditLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read the audit trail {}: {e}", path.display()),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not an audit line", path.display(), n + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn the_command_line_keeps_no_secret() {
        let line = masked_command_line(strings(&[
            "smmctl",
            "-X",
            "sasl.password=hunter2",
            "--database-url",
            "postgres://smm:pw/with/slash@db/panel",
            "--api-key",
            "abc123",
            "--token=t0ken",
            "dlq",
            "drain",
            "smm.order.refund.dlq",
        ]));
        let joined = line.join(" ");
        for secret in ["hunter2", "pw/with/slash", "abc123", "t0ken"] {
            assert!(!joined.contains(secret), "{secret} leaked: {joined}");
        }
        assert!(joined.contains("sasl.password=****"), "{joined}");
        assert!(joined.contains("smm.order.refund.dlq"), "{joined}");
    }
}
