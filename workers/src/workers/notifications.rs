//! `notifications` (the seed's NotificationService): deliver customer
//! notifications by email (SMTP), SMS or push (HTTP providers).
//!
//! A customer must not get the same message twice. The notification id is
//! checked against `notifications_sent` before anything is sent, and the
//! row is written with the dedup claim once the provider accepted it. No
//! transaction stays open across the network call (SQLite has a single
//! writer), so a crash between the send and the commit sends again on the
//! redelivery; the notification id travels as the email's Message-ID and
//! as the HTTP providers' Idempotency-Key so that they can drop the repeat.
//!
//! Failures: what may pass (a refused connection, a timeout, an SMTP 4xx,
//! an HTTP 5xx) is retried on the topic's ladder; what will not (an SMTP
//! 5xx such as an unknown mailbox, an HTTP 4xx, a channel with no provider
//! configured) goes to the dead letter with the reason.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use reqwest::Url;
use sqlx::Row as _;

use crate::contract::events::{Notification, NotificationChannel};
use crate::runtime::{Delivery, Handled, Handler, HandlerFailure};
use crate::store::{Store, StoreError, redact_url};

use super::event_of;

/// Where notifications go. Secrets (the SMTP password in `smtp_url`, the
/// `api_key`) are never shown by this type's `Debug` or by any error.
#[derive(Clone)]
pub struct NotifySettings {
    /// `smtp://host:port`, `smtps://host` (TLS from the start) or
    /// `smtp://host:587?tls=required` (STARTTLS), with credentials as
    /// `smtp://user:password@host`. `None`: email is not configured.
    pub smtp_url: Option<String>,
    /// The From address, `Name <address>` or a bare address.
    pub mail_from: String,
    /// The SMS provider's endpoint, which takes a JSON POST.
    pub sms_url: Option<String>,
    /// The push provider's endpoint, which takes a JSON POST.
    pub push_url: Option<String>,
    /// Bearer token for the SMS and push endpoints.
    pub api_key: Option<String>,
    /// How long one SMTP command or one HTTP request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySettings")
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_from", &self.mail_from)
            .field("sms_url", &self.sms_url.as_deref().map(redact_url))
            .field("push_url", &self.push_url.as_deref().map(redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Settings that cannot work, found before the worker starts.
#[derive(Debug, thiserror::Error)]
pub enum NotifyConfigError {
    #[error(
        "the SMTP URL {url} is not usable: {reason} (expected smtp://host:port, smtps://host or smtp://host:587?tls=required, with user:password@ before the host when the server wants a login)"
    )]
    SmtpUrl { url: String, reason: String },
    #[error(
        "the mail sender address `{address}` is not an address: {reason} (expected name@example.com or `Name <name@example.com>`)"
    )]
    MailFrom { address: String, reason: String },
    #[error(
        "the {setting} endpoint {url} is not usable: {reason} (expected an http:// or https:// URL)"
    )]
    Endpoint {
        setting: &'static str,
        url: String,
        reason: String,
    },
    #[error("cannot build the HTTP client for the SMS and push providers: {0}")]
    HttpClient(String),
}

/// The configured providers, ready to send.
#[derive(Clone)]
pub struct Senders {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    mail_from: Mailbox,
    sms_url: Option<Url>,
    push_url: Option<Url>,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("smtp", &self.smtp.is_some())
            .field("mail_from", &self.mail_from.to_string())
            .field("sms_url", &self.sms_url.as_ref().map(shown_url))
            .field("push_url", &self.push_url.as_ref().map(shown_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// Why one send failed, and so whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider may take it later: connection refused, timeout, SMTP
    /// 4xx, HTTP 5xx.
    #[error("{channel} provider unavailable: {reason}")]
    Unavailable {
        channel: &'static str,
        reason: String,
    },
    /// The provider asked to wait this long before trying again.
    #[error("{channel} provider is rate limiting: {reason}")]
    Throttled {
        channel: &'static str,
        reason: String,
        retry_after: Duration,
    },
    /// The provider refused this message for good: SMTP 5xx, HTTP 4xx.
    #[error("{channel} provider refused the notification: {reason}")]
    Refused {
        channel: &'static str,
        reason: String,
    },
    /// The message cannot be sent as it is (an unparsable address).
    #[error("{channel} notification cannot be sent: {reason}")]
    Invalid {
        channel: &'static str,
        reason: String,
    },
    /// No provider is configured for the channel.
    #[error(
        "no {channel} provider is configured: set {setting} to deliver {channel} notifications"
    )]
    NotConfigured {
        channel: &'static str,
        setting: &'static str,
    },
}

impl From<SendError> for HandlerFailure {
    fn from(error: SendError) -> HandlerFailure {
        let message = error.to_string();
        match error {
            SendError::Unavailable { .. } => {
                HandlerFailure::retryable("smmctl.notifications.ProviderUnavailable", message)
            }
            SendError::Throttled { retry_after, .. } => HandlerFailure::throttled(
                "smmctl.notifications.ProviderThrottled",
                message,
                retry_after,
            ),
            SendError::Refused { .. } => {
                HandlerFailure::poison("smmctl.notifications.ProviderRefused", message)
            }
            SendError::Invalid { .. } => {
                HandlerFailure::poison("smmctl.notifications.InvalidNotification", message)
            }
            SendError::NotConfigured { .. } => {
                HandlerFailure::poison("smmctl.notifications.ChannelNotConfigured", message)
            }
        }
    }
}

/// How long to wait before trying credentials a provider refused.
const CREDENTIALS_RETRY: Duration = crate::providers::CREDENTIALS_RETRY;
/// The longest wait a provider's Retry-After is taken at its word for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How much of a provider's answer is kept, in the store or a dead letter.
const EXCERPT: usize = 300;

impl Senders {
    pub fn new(settings: &NotifySettings) -> Result<Senders, NotifyConfigError> {
        let smtp = match settings.smtp_url.as_deref() {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| NotifyConfigError::SmtpUrl {
                        url: redact_url(url),
                        // lettre names neither the URL nor its password.
                        reason: e.to_string(),
                    })?
                    .timeout(Some(settings.timeout))
                    .build(),
            ),
        };
        let mail_from =
            settings
                .mail_from
                .parse::<Mailbox>()
                .map_err(|e| NotifyConfigError::MailFrom {
                    address: settings.mail_from.clone(),
                    reason: e.to_string(),
                })?;
        let endpoint = |setting: &'static str, url: Option<&str>| {
            url.map(|text| {
                let invalid = |reason: String| NotifyConfigError::Endpoint {
                    setting,
                    url: redact_url(text),
                    reason,
                };
                let url = Url::parse(text).map_err(|e| invalid(e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid(format!(
                        "the scheme `{}` is not HTTP",
                        url.scheme()
                    )));
                }
                Ok(url)
            })
            .transpose()
        };
        let sms_url = endpoint("sms_url", settings.sms_url.as_deref())?;
        let push_url = endpoint("push_url", settings.push_url.as_deref())?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| NotifyConfigError::HttpClient(error_chain(&e)))?;
        Ok(Senders {
            smtp,
            mail_from,
            sms_url,
            push_url,
            api_key: settings.api_key.clone(),
            http,
        })
    }

    /// Hands `notification` to its channel's provider once; returns what
    /// the provider answered (its reference for the message), if anything.
    pub async fn deliver(&self, notification: &Notification) -> Result<Option<String>, SendError> {
        let id = notification.notification_id.as_str();
        match &notification.channel {
            NotificationChannel::Email { to, subject, body } => {
                self.email(id, to, subject, body).await.map(Some)
            }
            NotificationChannel::Sms { to, text } => {
                let url = self.sms_url.as_ref().ok_or(SendError::NotConfigured {
                    channel: "sms",
                    setting: "sms_url",
                })?;
                let body = serde_json::json!({ "to": to, "text": text, "notification_id": id });
                self.post("sms", url, id, &body).await
            }
            NotificationChannel::Push {
                device_token,
                title,
                body,
            } => {
                let url = self.push_url.as_ref().ok_or(SendError::NotConfigured {
                    channel: "push",
                    setting: "push_url",
                })?;
                let body = serde_json::json!({
                    "device_token": device_token,
                    "title": title,
                    "body": body,
                    "notification_id": id,
                });
                self.post("push", url, id, &body).await
            }
        }
    }

    async fn email(
        &self,
        notification_id: &str,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<String, SendError> {
        let smtp = self.smtp.as_ref().ok_or(SendError::NotConfigured {
            channel: "email",
            setting: "smtp_url",
        })?;
        let invalid = |reason: String| SendError::Invalid {
            channel: "email",
            reason,
        };
        let recipient = to
            .parse::<Mailbox>()
            .map_err(|e| invalid(format!("the recipient `{to}` is not an address: {e}")))?;
        let message = Message::builder()
            .from(self.mail_from.clone())
            .to(recipient)
            .subject(subject)
            .message_id(Some(message_id(notification_id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| invalid(e.to_string()))?;
        let response = smtp.send(message).await.map_err(smtp_failure)?;
        let text: Vec<&str> = response.message().collect();
        Ok(excerpt(&format!("{} {}", response.code(), text.join(" "))))
    }

    async fn post(
        &self,
        channel: &'static str,
        url: &Url,
        notification_id: &str,
        body: &serde_json::Value,
    ) -> Result<Option<String>, SendError> {
        let mut request = self
            .http
            .post(url.clone())
            .header("idempotency-key", notification_id)
            .json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| SendError::Unavailable {
            channel,
            reason: format!("{}: {}", shown_url(url), error_chain(&e)),
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let answer = excerpt(&response.text().await.unwrap_or_default());
        let reason = format!("HTTP {status} from {}: {answer}", shown_url(url));
        if status.is_success() {
            Ok((!answer.is_empty()).then_some(answer))
        } else if status.as_u16() == 429 {
            Err(match retry_after {
                Some(retry_after) => SendError::Throttled {
                    channel,
                    reason,
                    retry_after,
                },
                None => SendError::Unavailable { channel, reason },
            })
        } else if status.is_server_error() || status.as_u16() == 408 {
            Err(SendError::Unavailable { channel, reason })
        } else if status.as_u16() == 401 {
            // Wrong credentials fail every notification alike: wait for
            // the key to be fixed rather than dead-letter them all.
            Err(SendError::Throttled {
                channel,
                reason: format!("{reason}; check notify_api_key"),
                retry_after: CREDENTIALS_RETRY,
            })
        } else {
            Err(SendError::Refused { channel, reason })
        }
    }
}

/// SMTP replies say whether to try again: 4xx yes, 5xx no. Everything
/// short of a reply (no connection, a timeout, a broken TLS handshake) may
/// pass, so it is retried.
fn smtp_failure(error: SmtpError) -> SendError {
    let reason = error_chain(&error);
    // 530/534/535: the server refuses our login, which no recipient can
    // fix; wait for the credentials in smtp_url to be corrected.
    let login_refused = error
        .status()
        .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535"));
    if login_refused {
        SendError::Throttled {
            channel: "email",
            reason: format!("{reason}; check the user and password in smtp_url"),
            retry_after: CREDENTIALS_RETRY,
        }
    } else if error.is_permanent() {
        SendError::Refused {
            channel: "email",
            reason,
        }
    } else {
        SendError::Unavailable {
            channel: "email",
            reason,
        }
    }
}

/// `<id@smmctl>`, with every character a Message-ID cannot hold
/// percent-encoded, so that the same notification always gets the same id.
pub fn message_id(notification_id: &str) -> String {
    let mut local = String::with_capacity(notification_id.len());
    for byte in notification_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'+' | b'=') {
            local.push(char::from(byte));
        } else {
            local.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("<{local}@smmctl>")
}

/// An endpoint as logs and dead letters may show it: no credentials, no
/// query (where tokens tend to travel).
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.to_string()
}

/// An error and its causes on one line. reqwest's own message names the
/// full URL, query included, so it is replaced by what went wrong; the
/// caller shows the URL redacted.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_timeout() => "timed out".to_owned(),
        Some(e) if e.is_connect() => "cannot connect".to_owned(),
        Some(e) if e.url().is_some() => "request failed".to_owned(),
        _ => error.to_string(),
    };
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn excerpt(text: &str) -> String {
    text.trim().chars().take(EXCERPT).collect()
}

pub struct Notifications {
    pub store: Store,
    pub senders: Senders,
}

impl Notifications {
    async fn already_sent(&self, notification_id: &str) -> Result<bool, StoreError> {
        let found = sqlx::query("SELECT 1 FROM notifications_sent WHERE notification_id = $1")
            .bind(notification_id)
            .fetch_optional(self.store.pool())
            .await?;
        Ok(found.is_some())
    }
}

impl Handler for Notifications {
    async fn handle<'a>(&'a self, delivery: &'a Delivery<'a>) -> Result<Handled, HandlerFailure> {
        let envelope = delivery.envelope()?;
        let notification = event_of!(envelope, Notification)?;
        if self
            .store
            .is_processed(delivery.worker, envelope.event_id)
            .await?
            || self.already_sent(&notification.notification_id).await?
        {
            return Ok(Handled::Duplicate(envelope.event_id));
        }
        let reference = self.senders.deliver(notification).await?;
        let Some(mut unit) = self.store.begin(delivery.claim(envelope.event_id)).await? else {
            return Ok(Handled::Duplicate(envelope.event_id));
        };
        let (channel, recipient) = match &notification.channel {
            NotificationChannel::Email { to, .. } => ("email", to.as_str()),
            NotificationChannel::Sms { to, .. } => ("sms", to.as_str()),
            NotificationChannel::Push { device_token, .. } => ("push", device_token.as_str()),
        };
        let inserted = sqlx::query(
            "INSERT INTO notifications_sent (notification_id, user_id, channel, recipient, provider_reference, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(&notification.notification_id)
        .bind(notification.user_id)
        .bind(channel)
        .bind(recipient)
        .bind(reference.as_deref())
        .bind(jiff::Timestamp::now().to_string())
        .execute(unit.conn())
        .await
        .map_err(StoreError::from)?;
        if inserted.rows_affected() == 0 {
            // Another worker sent the same notification under another
            // event id between the check and now; the provider's dedup by
            // Message-ID or Idempotency-Key is all that is left.
            tracing::warn!(
                notification_id = %notification.notification_id,
                "notification was sent concurrently under another event id"
            );
        }
        unit.commit().await?;
        Ok(Handled::Applied(envelope.event_id))
    }
}

/// What `notifications_sent` holds for one delivered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentNotification {
    pub notification_id: String,
    pub user_id: i64,
    pub channel: String,
    pub recipient: String,
    pub provider_reference: Option<String>,
    pub sent_at: String,
}

/// The record of one delivered notification, if it was delivered.
pub async fn sent(
    store: &Store,
    notification_id: &str,
) -> Result<Option<SentNotification>, StoreError> {
    let row = sqlx::query(
        "SELECT notification_id, user_id, channel, recipient, provider_reference, sent_at \
         FROM notifications_sent WHERE notification_id = $1",
    )
    .bind(notification_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|row| {
        Ok(SentNotification {
            notification_id: row.try_get("notification_id")?,
            user_id: row.try_get("user_id")?,
            channel: row.try_get("channel")?,
            recipient: row.try_get("recipient")?,
            provider_reference: row.try_get("provider_reference")?,
            sent_at: row.try_get("sent_at")?,
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NotifySettings {
        NotifySettings {
            smtp_url: Some("smtp://mailer:hunter2@127.0.0.1:2525".into()),
            mail_from: "Panel <noreply@panel.example>".into(),
            sms_url: Some("http://user:pw@127.0.0.1:1/sms?token=abc".into()),
            push_url: None,
            api_key: Some("bearer-secret".into()),
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn message_ids_are_stable_and_valid() {
        assert_eq!(message_id("n-42"), "<n-42@smmctl>");
        assert_eq!(message_id("n-42"), message_id("n-42"));
        assert_eq!(message_id("a b@c.d<>"), "<a%20b%40c%2Ed%3C%3E@smmctl>");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let settings = settings();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("bearer-secret"), "{shown}");
        let senders = Senders::new(&settings).unwrap();
        let shown = format!("{senders:?}");
        assert!(!shown.contains("bearer-secret"), "{shown}");
        assert!(
            !shown.contains("pw@") && !shown.contains("token"),
            "{shown}"
        );
    }

    #[test]
    fn bad_settings_are_refused_without_printing_the_password() {
        let mut bad = settings();
        bad.smtp_url = Some("imap://mailer:hunter2@mail.example".into());
        let error = Senders::new(&bad).unwrap_err().to_string();
        assert!(error.contains("imap"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let mut bad = settings();
        bad.smtp_url = Some("smtp://mailer:hunter2@".into());
        let error = Senders::new(&bad).unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");

        let mut bad = settings();
        bad.mail_from = "not an address".into();
        let error = Senders::new(&bad).unwrap_err().to_string();
        assert!(error.contains("sender address"), "{error}");

        let mut bad = settings();
        bad.push_url = Some("ftp://push.example".into());
        let error = Senders::new(&bad).unwrap_err().to_string();
        assert!(error.contains("push_url"), "{error}");
    }

    #[test]
    fn failures_map_to_the_ladder() {
        let kind = |e: SendError| HandlerFailure::from(e).kind;
        use crate::runtime::FailureKind;
        assert_eq!(
            kind(SendError::Unavailable {
                channel: "sms",
                reason: "HTTP 503".into()
            }),
            FailureKind::Retryable
        );
        assert_eq!(
            kind(SendError::Refused {
                channel: "sms",
                reason: "HTTP 422".into()
            }),
            FailureKind::Poison
        );
        let missing = HandlerFailure::from(SendError::NotConfigured {
            channel: "sms",
            setting: "sms_url",
        });
        assert_eq!(missing.kind, FailureKind::Poison);
        assert!(missing.message.contains("sms_url"), "{}", missing.message);
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut settings = settings();
        settings.smtp_url = Some(format!("smtp://mailer:hunter2@127.0.0.1:{port}"));
        let senders = Senders::new(&settings).unwrap();
        let error = senders
            .deliver(&Notification {
                notification_id: "n-1".into(),
                user_id: 1,
                channel: NotificationChannel::Email {
                    to: "a@example.com".into(),
                    subject: "s".into(),
                    body: "b".into(),
                },
            })
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Unavailable { .. }), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
