//! The outside services the selected workers need, built from the
//! `[providers]` settings before anything starts: a missing key or a
//! malformed URL fails the start with exit 2 and names the setting.

use std::net::SocketAddr;
use std::time::Duration;

use smm_workers::providers::binom::BinomApi;
use smm_workers::providers::delivery::DeliveryApi;
use smm_workers::providers::youtube::{Quota, YouTubeApi};
use smm_workers::workers::WorkerKind;
use smm_workers::workers::notifications::{NotifySettings, Senders};

use crate::config::{Settings, parse_duration};
use crate::exit::UsageError;

pub struct Clients {
    pub youtube: Option<(YouTubeApi, Quota)>,
    pub delivery: Option<(DeliveryApi, Duration)>,
    pub binom: Option<BinomApi>,
    pub websocket: Option<(SocketAddr, Vec<u8>)>,
    pub senders: Option<Senders>,
}

fn url<'s>(settings: &'s Settings, key: &str, needed_by: &str) -> Result<&'s str, UsageError> {
    let value = settings.providers.require(key, needed_by)?;
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value)
    } else {
        Err(UsageError::new(format!(
            "`{key}` is `{value}`: it must be an http:// or https:// URL"
        )))
    }
}

fn duration(settings: &Settings, key: &str) -> Result<Duration, UsageError> {
    let text = settings.providers.value(key).unwrap_or("");
    parse_duration(text).map_err(|why| UsageError::new(format!("`{key}` is `{text}`: {why}")))
}

fn http_error(service: &str, e: impl std::fmt::Display) -> UsageError {
    UsageError::new(format!("cannot build the HTTP client for {service}: {e}"))
}

/// Whether any selected worker has the need `needs` asks about.
fn wants(selected: &[WorkerKind], needs: fn(WorkerKind) -> bool) -> bool {
    selected.iter().any(|kind| needs(*kind))
}

pub fn build(selected: &[WorkerKind], settings: &Settings) -> Result<Clients, UsageError> {
    // Separate from the command timeout, which is tuned for the broker: a
    // provider slower than a broker round trip is still up.
    let timeout = duration(settings, "http_timeout")?;
    let youtube = if wants(selected, WorkerKind::needs_youtube) {
        let needed_by = "the orders and youtube workers";
        let base = url(settings, "youtube_url", needed_by)?;
        let key = settings.providers.require("youtube_api_key", needed_by)?;
        let budget_text = settings
            .providers
            .value("youtube_daily_quota")
            .unwrap_or("");
        let budget: i64 = budget_text
            .parse()
            .ok()
            .filter(|b: &i64| *b > 0)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "`youtube_daily_quota` is `{budget_text}`: give the daily unit budget as a positive whole number (Google's default is 10000)"
                ))
            })?;
        let window = duration(settings, "youtube_quota_window")?;
        Some((
            YouTubeApi::new(base, key, timeout).map_err(|e| http_error("YouTube", e))?,
            Quota { budget, window },
        ))
    } else {
        None
    };
    let delivery = if wants(selected, WorkerKind::needs_delivery) {
        let needed_by = "the video worker";
        let base = url(settings, "delivery_url", needed_by)?;
        let key = settings.providers.value("delivery_api_key");
        Some((
            DeliveryApi::new(base, key, timeout)
                .map_err(|e| http_error("the delivery provider", e))?,
            duration(settings, "delivery_poll_interval")?,
        ))
    } else {
        None
    };
    let binom = if wants(selected, WorkerKind::needs_binom) {
        let needed_by = "the binom worker";
        let base = url(settings, "binom_url", needed_by)?;
        let key = settings.providers.require("binom_api_key", needed_by)?;
        Some(BinomApi::new(base, key, timeout).map_err(|e| http_error("Binom", e))?)
    } else {
        None
    };
    let websocket = if wants(selected, WorkerKind::needs_websocket_listener) {
        let needed_by = "the websocket worker";
        let text = settings.providers.require("ws_addr", needed_by)?;
        let addr: SocketAddr = text.parse().map_err(|_| {
            UsageError::new(format!(
                "`ws_addr` is `{text}`: write it as HOST:PORT with an IP address, like 127.0.0.1:8090"
            ))
        })?;
        let secret = settings.providers.require("ws_token_secret", needed_by)?;
        if secret.len() < 16 {
            return Err(UsageError::new(
                "`ws_token_secret` is too short to sign client tokens: use at least 16 random characters",
            ));
        }
        Some((addr, secret.as_bytes().to_vec()))
    } else {
        None
    };
    let senders = if wants(selected, WorkerKind::needs_notification_channels) {
        let value = |key: &str| settings.providers.value(key).map(str::to_owned);
        let notify = NotifySettings {
            smtp_url: value("smtp_url"),
            mail_from: value("mail_from").unwrap_or_default(),
            sms_url: value("sms_url"),
            push_url: value("push_url"),
            api_key: value("notify_api_key"),
            timeout,
        };
        if notify.smtp_url.is_none() && notify.sms_url.is_none() && notify.push_url.is_none() {
            return Err(UsageError::new(
                "the notifications worker has no channel to send through: set smtp_url \
                 (SMM_SMTP_URL, e.g. smtp://user:password@mail.example.com:587?tls=required), \
                 sms_url (SMM_SMS_URL) or push_url (SMM_PUSH_URL)",
            ));
        }
        Some(Senders::new(&notify).map_err(|e| UsageError::new(e.to_string()))?)
    } else {
        None
    };
    Ok(Clients {
        youtube,
        delivery,
        binom,
        websocket,
        senders,
    })
}
