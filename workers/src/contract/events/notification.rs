//! Messages to customers over email, SMS or push.

use serde::{Deserialize, Serialize};

use super::ValidationError;
use super::validate::{id, non_empty, shown};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: senders skip ids they have already delivered, so a
    /// redelivered message does not reach the customer twice.
    pub notification_id: String,
    pub user_id: i64,
    pub channel: NotificationChannel,
}

/// Tagged by `channel` so each sender only needs to look at one field to
/// decide whether the message is for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum NotificationChannel {
    Email {
        to: String,
        subject: String,
        body: String,
    },
    Sms {
        to: String,
        text: String,
    },
    Push {
        device_token: String,
        title: String,
        body: String,
    },
}

impl Notification {
    /// Checks only what would make delivery impossible; wording is the
    /// sender's business.
    pub fn validate(&self) -> Result<(), ValidationError> {
        non_empty("notification_id", &self.notification_id)?;
        id("user_id", self.user_id)?;
        match &self.channel {
            NotificationChannel::Email { to, .. } => {
                let has_both_parts = to
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
                if has_both_parts {
                    Ok(())
                } else {
                    Err(ValidationError::new(
                        "channel.to",
                        format!(
                            "must be an email address like name@example.com (got {})",
                            shown(to)
                        ),
                    ))
                }
            }
            NotificationChannel::Sms { to, text } => {
                let digits = to.strip_prefix('+').unwrap_or(to);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ValidationError::new(
                        "channel.to",
                        format!(
                            "must be a phone number of digits with an optional leading '+' (got {})",
                            shown(to)
                        ),
                    ));
                }
                non_empty("channel.text", text)
            }
            NotificationChannel::Push { device_token, .. } => {
                non_empty("channel.device_token", device_token)
            }
        }
    }
}
