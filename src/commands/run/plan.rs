//! What `smmctl run` was asked to start, resolved and checked before
//! anything starts: everything an operator can get wrong fails here with
//! exit 2 and touches nothing.

use std::net::SocketAddr;
use std::time::Duration;

use smm_workers::providers::cryptomus::RefundApi;
use smm_workers::workers::{WORKERS, WorkerInfo, WorkerKind};

use super::providers::{self, Clients};
use super::store_error;
use crate::cli::{RunArgs, WorkerName};
use crate::config::Settings;
use crate::exit::UsageError;

/// The workers to start and everything they were found to need.
pub struct Plan {
    /// In the order asked for, each once; the gateway among them if asked.
    pub selected: Vec<WorkerKind>,
    /// The selected workers that consume topics, in the same order.
    pub consumers: Vec<&'static WorkerInfo>,
    pub metrics_addr: SocketAddr,
    /// Where the webhook gateway listens, when it was selected.
    pub gateway_addr: Option<SocketAddr>,
    pub api_key: Option<String>,
    /// The refund API, when the payment-refunds worker was selected.
    pub refund_api: Option<RefundApi>,
    pub clients: Clients,
    pub database_url: String,
    /// `--instance`: the workers' static group membership.
    pub instance: Option<String>,
}

impl Plan {
    pub fn resolve(args: &RunArgs, settings: &Settings) -> anyhow::Result<Plan> {
        let selected = expand(&args.workers);
        let consumers: Vec<&'static WorkerInfo> =
            selected.iter().filter_map(|kind| kind.info()).collect();
        let metrics_addr = parse_addr(
            "metrics address (--metrics-addr / SMM_METRICS_ADDR)",
            args.metrics_addr
                .as_deref()
                .unwrap_or(&settings.metrics_addr.value),
        )?;
        let gateway_addr = if selected.contains(&WorkerKind::WebhookGateway) {
            Some(parse_addr(
                "gateway address (--gateway-addr / SMM_GATEWAY_ADDR)",
                &args.gateway_addr,
            )?)
        } else {
            None
        };
        let api_key = cryptomus_key(&selected, settings)?;
        let refund_api = if selected.iter().any(|kind| kind.needs_refund_api()) {
            Some(refund_api(settings, api_key.as_deref())?)
        } else {
            None
        };
        check_flags(args, &selected)?;
        let instance = args.instance.as_deref().map(instance_name).transpose()?;
        let clients = providers::build(&selected, settings)?;
        let database_url = args
            .database_url
            .clone()
            .unwrap_or_else(|| settings.database_url.value.clone());
        if !consumers.is_empty() {
            smm_workers::store::backend_of(&database_url)
                .map_err(|e| store_error(e, &database_url))?;
        }
        Ok(Plan {
            selected,
            consumers,
            metrics_addr,
            gateway_addr,
            api_key,
            refund_api,
            clients,
            database_url,
            instance,
        })
    }

    /// Every topic the selected workers consume or produce to.
    pub fn needed_topics(&self) -> Vec<&'static str> {
        let mut topics = Vec::new();
        let mut add = |t: &'static str| {
            if !topics.contains(&t) {
                topics.push(t);
            }
        };
        for info in &self.consumers {
            for policy in info.policies() {
                add(policy.main_topic);
                for hop in policy.hops {
                    if let Some(t) = hop.topic {
                        add(t);
                    }
                }
                for t in [policy.exhausted_topic, policy.poison_topic]
                    .into_iter()
                    .flatten()
                {
                    add(t);
                }
            }
            for t in info.emits {
                add(t);
            }
        }
        if self.gateway_addr.is_some() {
            add(smm_workers::contract::catalog::PAYMENT_WEBHOOKS);
        }
        topics
    }
}

/// The kinds named on the command line, `all` spelled out, each once.
fn expand(names: &[WorkerName]) -> Vec<WorkerKind> {
    let mut out: Vec<WorkerKind> = Vec::new();
    let mut add = |kind: WorkerKind| {
        if !out.contains(&kind) {
            out.push(kind);
        }
    };
    for name in names {
        match name {
            WorkerName::All => {
                for w in WORKERS {
                    add(w.kind);
                }
                add(WorkerKind::WebhookGateway);
            }
            WorkerName::One(kind) => add(*kind),
        }
    }
    out
}

/// The Cryptomus API key, which the selected workers may require.
fn cryptomus_key(
    selected: &[WorkerKind],
    settings: &Settings,
) -> Result<Option<String>, UsageError> {
    let needs_key = selected.iter().any(|kind| kind.needs_cryptomus_key());
    match (&settings.cryptomus.api_key, needs_key) {
        (Some(key), _) => Ok(Some(key.value.clone())),
        (None, false) => Ok(None),
        (None, true) => Err(UsageError::new(
            "the webhooks and payment-refunds workers need the Cryptomus API key: set \
             SMM_CRYPTOMUS_API_KEY, or api_key in the profile's [cryptomus] table \
             (a string, { file = \"…\" } or { env = \"…\" })",
        )),
    }
}

fn refund_api(settings: &Settings, api_key: Option<&str>) -> anyhow::Result<RefundApi> {
    let merchant = settings.cryptomus.merchant.as_ref().ok_or_else(|| {
        UsageError::new(
            "the payment-refunds worker needs the Cryptomus merchant id: set \
             SMM_CRYPTOMUS_MERCHANT, or merchant in the profile's [cryptomus] table",
        )
    })?;
    let base_url = &settings.cryptomus.base_url.value;
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(UsageError::new(format!(
            "the Cryptomus base URL `{base_url}` ({}) must start with http:// or https://",
            settings.cryptomus.base_url.source
        ))
        .into());
    }
    RefundApi::new(
        base_url,
        &merchant.value,
        api_key.unwrap_or_default(),
        settings.timeout.value.max(Duration::from_secs(10)),
    )
    // Not `.context`: that would print reqwest's causes after its message,
    // and operators see exactly this line today.
    .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for Cryptomus: {e}"))
}

/// The flags that only make sense with a particular worker.
fn check_flags(args: &RunArgs, selected: &[WorkerKind]) -> Result<(), UsageError> {
    if args.rebuild && !selected.contains(&WorkerKind::Cqrs) {
        return Err(UsageError::new(
            "--rebuild rebuilds the read model: run it with the cqrs worker (`smmctl run cqrs --rebuild`)",
        ));
    }
    if args.force && !args.rebuild {
        return Err(UsageError::new(
            "--force only overrides --rebuild's retention check",
        ));
    }
    if args.migrate_legacy && !selected.contains(&WorkerKind::Video) {
        return Err(UsageError::new(
            "--migrate-legacy feeds the video worker: run it with video (`smmctl run video --migrate-legacy`)",
        ));
    }
    Ok(())
}

fn parse_addr(what: &str, text: &str) -> Result<SocketAddr, UsageError> {
    text.parse().map_err(|_| {
        UsageError::new(format!(
            "invalid {what} `{text}`: write it as HOST:PORT with an IP address, like 127.0.0.1:9464 or 0.0.0.0:9464"
        ))
    })
}

/// The longest `--instance` that keeps `{instance}-{worker}` well inside
/// what brokers accept as a `group.instance.id` (249 characters).
const MAX_INSTANCE_LEN: usize = 200;

/// `--instance`, checked: it becomes part of each worker's
/// `group.instance.id`, which Kafka limits to letters, digits, `.`, `_`
/// and `-`.
fn instance_name(given: &str) -> Result<String, UsageError> {
    let name = given.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_INSTANCE_LEN || !name.chars().all(allowed) {
        return Err(UsageError::new(format!(
            "invalid --instance / SMM_INSTANCE `{given}`: use 1 to {MAX_INSTANCE_LEN} letters, digits, `.`, `_` or `-`, \
             unique to this process (a host or pod name)"
        )));
    }
    Ok(name.to_owned())
}
