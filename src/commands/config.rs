//! `smmctl config show|path`: the effective settings, with where each came
//! from, and never a secret in clear.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Context;
use crate::cli::ConfigCommand;
use crate::config::{
    Origin, PROVIDER_SETTINGS, Settings, Sourced, default_config_path, is_secret_key,
    mask_url_password,
};
use crate::exit::ExitStatus;
use crate::kafka::humanize;
use crate::output::or_dash;

const MASK: &str = "****";

pub fn run(cmd: ConfigCommand, ctx: &Context) -> anyhow::Result<ExitStatus> {
    match cmd {
        ConfigCommand::Show => show(ctx),
        ConfigCommand::Path => path(ctx),
    }
}

#[derive(Debug, Serialize)]
struct Row {
    setting: String,
    value: String,
    source: Origin,
}

fn row<T: ToString>(setting: &str, sourced: &Sourced<T>) -> Row {
    Row {
        setting: setting.to_string(),
        value: sourced.value.to_string(),
        source: sourced.source,
    }
}

/// Every effective setting as (name, shown value, source), secrets masked.
fn rows(settings: &Settings) -> Vec<Row> {
    let mut rows = vec![
        row("brokers", &settings.brokers),
        row("client_id", &settings.client_id),
        Row {
            setting: "timeout".into(),
            value: humanize(settings.timeout.value),
            source: settings.timeout.source,
        },
        Row {
            setting: "database_url".into(),
            value: mask_url_password(&settings.database_url.value),
            source: settings.database_url.source,
        },
        row("metrics_addr", &settings.metrics_addr),
    ];
    let c = &settings.cryptomus;
    rows.push(match &c.api_key {
        Some(key) => Row {
            setting: "cryptomus.api_key".into(),
            value: MASK.into(),
            source: key.source,
        },
        None => Row {
            setting: "cryptomus.api_key".into(),
            value: "-".into(),
            source: Origin::Default,
        },
    });
    rows.push(match &c.merchant {
        Some(m) => row("cryptomus.merchant", m),
        None => Row {
            setting: "cryptomus.merchant".into(),
            value: "-".into(),
            source: Origin::Default,
        },
    });
    rows.push(row("cryptomus.base_url", &c.base_url));
    for spec in PROVIDER_SETTINGS {
        let setting = format!("providers.{}", spec.key);
        rows.push(match settings.providers.get(spec.key) {
            // URLs may carry credentials in their user part, and HTTP
            // endpoints in their query (`?token=`); SMTP's query is only
            // its TLS mode.
            Some(value) if spec.key.ends_with("_url") => Row {
                setting,
                value: match mask_url_password(&value.value).split_once('?') {
                    Some((base, _)) if spec.key != "smtp_url" => format!("{base}?{MASK}"),
                    _ => mask_url_password(&value.value),
                },
                source: value.source,
            },
            Some(value) if spec.secret => Row {
                setting,
                value: MASK.into(),
                source: value.source,
            },
            Some(value) => row(&setting, value),
            None => Row {
                setting,
                value: "-".into(),
                source: Origin::Default,
            },
        });
    }
    let t = &settings.thresholds;
    for (key, value) in [
        ("max_lag", t.max_lag.to_string()),
        ("max_dead_letters", t.max_dead_letters.to_string()),
        (
            "max_processing_time_ms",
            t.max_processing_time.as_millis().to_string(),
        ),
        ("max_error_rate", t.max_error_rate.to_string()),
    ] {
        rows.push(Row {
            setting: format!("thresholds.{key}"),
            value,
            source: if t.from_file.contains(&key) {
                Origin::File
            } else {
                Origin::Default
            },
        });
    }
    for (group, g) in &t.groups {
        rows.push(Row {
            setting: format!("thresholds.groups.{group}.max_lag"),
            value: or_dash(g.max_lag),
            source: Origin::File,
        });
    }
    rows.push(row(
        "topics.replication_factor",
        &settings.topics.replication_factor,
    ));
    rows.push(row(
        "topics.min_insync_replicas",
        &settings.topics.min_insync_replicas,
    ));
    // Fixed for every producer smmctl and its workers make: a write counts
    // once min.insync.replicas brokers have it, and a retry never doubles it.
    for (key, value) in smm_workers::runtime::PRODUCER_DURABILITY {
        rows.push(Row {
            setting: format!("producer.{key}"),
            value: (*value).to_string(),
            source: Origin::Default,
        });
    }
    for (key, value) in &settings.kafka {
        rows.push(Row {
            setting: format!("kafka.{key}"),
            value: if is_secret_key(key) {
                MASK.into()
            } else {
                value.value.clone()
            },
            source: value.source,
        });
    }
    rows
}

fn show(ctx: &Context) -> anyhow::Result<ExitStatus> {
    let settings = &ctx.settings;
    let rows = rows(settings);
    if ctx.printer.is_json() {
        let mut map = Map::new();
        for r in &rows {
            map.insert(
                r.setting.clone(),
                json!({ "value": r.value, "source": r.source }),
            );
        }
        ctx.printer.json(&json!({
            "config_file": settings.config_file.as_ref().map(|p| p.display().to_string()),
            "profile": settings.profile.as_ref().map(|p| json!({ "value": p.value, "source": p.source })),
            "settings": Value::Object(map),
        }))?;
        return Ok(ExitStatus::Success);
    }
    ctx.printer.line(&format!(
        "config file: {}",
        settings
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into())
    ));
    ctx.printer.line(&format!(
        "profile:     {}",
        settings
            .profile
            .as_ref()
            .map(|p| format!("{} ({})", p.value, p.source))
            .unwrap_or_else(|| "none".into())
    ));
    ctx.printer.line("");
    let mut table = ctx.printer.table(["SETTING", "VALUE", "SOURCE"]);
    for r in rows {
        table.add_row(vec![r.setting, r.value, r.source.to_string()]);
    }
    ctx.printer.print_table(&table);
    Ok(ExitStatus::Success)
}

fn path(ctx: &Context) -> anyhow::Result<ExitStatus> {
    match ctx
        .settings
        .config_file
        .clone()
        .or_else(default_config_path)
    {
        Some(path) => {
            ctx.printer.line(&path.display().to_string());
            if !path.exists() {
                ctx.printer.note(
                    "(the file does not exist; smmctl runs on flags, SMM_* variables and defaults)",
                );
            }
            Ok(ExitStatus::Success)
        }
        None => {
            ctx.printer
                .note("no config directory is known for this user (HOME is not set)");
            Ok(ExitStatus::Failure)
        }
    }
}
