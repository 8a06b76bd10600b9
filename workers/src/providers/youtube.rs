//! YouTube Data API v3, as the `orders` and `youtube` workers use it, and
//! the daily unit budget every call is charged against.

use std::time::Duration;

use jiff::{Timestamp, ToSpan as _};
use serde::Deserialize;

use super::{CallError, base, classify, client, send, unreadable};
use crate::store::{Store, StoreError};

const SERVICE: &str = "the YouTube Data API";

/// What one `videos.list` or `channels.list` call costs in quota units.
pub const LIST_COST: i64 = 1;

#[derive(Debug, Clone)]
pub struct YouTubeApi {
    base_url: String,
    api_key: String,
    http: reqwest::Client,
}

/// A public video as `videos.list` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub id: String,
    pub title: String,
    pub channel_id: String,
    /// `None` when the owner hides the count.
    pub view_count: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Not in the answer: deleted, private, or never existed. YouTube does
    /// not tell these apart for an API key.
    #[error("video {0} is unknown or private: YouTube returned no item for it")]
    NotFound(String),
    #[error("YouTube reports the project's quota as exceeded")]
    QuotaExceeded,
    #[error(transparent)]
    Call(#[from] CallError),
}

#[derive(Deserialize)]
struct ListResponse<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize)]
struct VideoItem {
    id: String,
    #[serde(default)]
    snippet: Option<Snippet>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Snippet {
    #[serde(default)]
    title: String,
    #[serde(default, rename = "channelId")]
    channel_id: String,
}

#[derive(Deserialize)]
struct Statistics {
    /// YouTube sends counts as strings.
    #[serde(default, rename = "viewCount")]
    view_count: Option<String>,
}

#[derive(Deserialize)]
struct ChannelItem {
    id: String,
}

impl YouTubeApi {
    pub fn new(base_url: &str, api_key: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(YouTubeApi {
            base_url: base(base_url),
            api_key: api_key.to_owned(),
            http: client(timeout)?,
        })
    }

    async fn list(&self, resource: &str, part: &str, id: &str) -> Result<String, LookupError> {
        let request = self
            .http
            .get(format!("{}/youtube/v3/{resource}", self.base_url))
            .query(&[("part", part), ("id", id), ("key", self.api_key.as_str())]);
        // Google's reasons sit deep in the error body, so they are read
        // from the whole of it, before any excerpt is taken.
        let (status, text) = send(SERVICE, request).await?;
        if (400..500).contains(&status) && status != 429 {
            let has = |reason: &str| text.contains(reason);
            if has("quotaExceeded") || has("dailyLimitExceeded") {
                return Err(LookupError::QuotaExceeded);
            }
            let excerpt: String = text.chars().take(300).collect();
            // Per-second limits, not the daily quota: a moment later works.
            if has("ateLimitExceeded") {
                return Err(CallError::Unavailable {
                    service: SERVICE,
                    reason: format!("rate limited: {excerpt}"),
                }
                .into());
            }
            // A bad, restricted or disabled key: the same for every video.
            let key_problem = has("keyInvalid")
                || has("API_KEY_INVALID")
                || has("API key not valid")
                || has("accessNotConfigured")
                || has("ipRefererBlocked")
                || status == 403;
            if key_problem {
                return Err(CallError::Unauthorized {
                    service: SERVICE,
                    status,
                    body: excerpt,
                }
                .into());
            }
        }
        classify(SERVICE, status, &text)?;
        Ok(text)
    }

    /// `videos.list` with `part=snippet,statistics`.
    pub async fn video(&self, video_id: &str) -> Result<Video, LookupError> {
        let body = self.list("videos", "snippet,statistics", video_id).await?;
        let answer: ListResponse<VideoItem> = serde_json::from_str(&body)
            .map_err(|e| unreadable(SERVICE, "videos.list answer", e))?;
        let item = answer
            .items
            .into_iter()
            .find(|item| item.id == video_id)
            .ok_or_else(|| LookupError::NotFound(video_id.to_owned()))?;
        let snippet = item.snippet.unwrap_or(Snippet {
            title: String::new(),
            channel_id: String::new(),
        });
        Ok(Video {
            id: item.id,
            title: snippet.title,
            channel_id: snippet.channel_id,
            view_count: item
                .statistics
                .and_then(|s| s.view_count)
                .and_then(|v| v.parse().ok()),
        })
    }

    /// `channels.list`: whether the channel exists.
    pub async fn channel_exists(&self, channel_id: &str) -> Result<bool, LookupError> {
        let body = self.list("channels", "snippet", channel_id).await?;
        let answer: ListResponse<ChannelItem> = serde_json::from_str(&body)
            .map_err(|e| unreadable(SERVICE, "channels.list answer", e))?;
        Ok(answer.items.iter().any(|c| c.id == channel_id))
    }
}

/// The project's daily unit budget, kept in the store so every worker and
/// every restart draws on the same count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub budget: i64,
    /// Google resets quotas at midnight Pacific time; a window of 24 h
    /// follows that. Other lengths count from the Unix epoch, for services
    /// with other windows and for tests.
    pub window: Duration,
}

/// The outcome of asking for units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    Granted,
    /// Nothing is left until `resets_at`.
    Exhausted {
        resets_at: Timestamp,
    },
}

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Quota {
    /// The quota period `now` falls in: its key and when it ends.
    pub fn period(&self, now: Timestamp) -> (String, Timestamp) {
        if self.window == DAY
            && let Ok(tz) = jiff::tz::TimeZone::get("America/Los_Angeles")
        {
            let local = now.to_zoned(tz);
            let key = local.date().to_string();
            let next = local
                .date()
                .checked_add(1.day())
                .ok()
                .and_then(|d| d.to_zoned(local.time_zone().clone()).ok())
                .map(|z| z.timestamp());
            if let Some(next) = next {
                return (key, next);
            }
        }
        let window_ms = (self.window.as_millis() as i64).max(1);
        let index = now.as_millisecond().div_euclid(window_ms);
        let next = Timestamp::from_millisecond((index + 1) * window_ms).unwrap_or(now);
        (format!("w{}-{index}", self.window.as_secs()), next)
    }

    /// Takes `units` from the current period's budget, atomically, so
    /// concurrent workers cannot both take the last ones.
    pub async fn spend(&self, store: &Store, units: i64) -> Result<Spend, StoreError> {
        let now = Timestamp::now();
        let (key, resets_at) = self.period(now);
        let mut conn = store.pool().acquire().await?;
        sqlx::query(
            "INSERT INTO youtube_quota (quota_day, budget, used) VALUES ($1, $2, 0) \
             ON CONFLICT (quota_day) DO NOTHING",
        )
        .bind(&key)
        .bind(self.budget)
        .execute(&mut *conn)
        .await?;
        let granted = sqlx::query(
            "UPDATE youtube_quota SET used = used + $1, budget = $2 \
             WHERE quota_day = $3 AND used + $1 <= $2",
        )
        .bind(units)
        .bind(self.budget)
        .bind(&key)
        .execute(&mut *conn)
        .await?;
        if granted.rows_affected() == 1 {
            Ok(Spend::Granted)
        } else {
            sqlx::query(
                "UPDATE youtube_quota SET exhausted_at = $1 WHERE quota_day = $2 AND exhausted_at IS NULL",
            )
            .bind(now.to_string())
            .bind(&key)
            .execute(&mut *conn)
            .await?;
            Ok(Spend::Exhausted { resets_at })
        }
    }

    /// Marks the period spent when YouTube says so, so other workers stop
    /// calling too.
    pub async fn exhaust(&self, store: &Store) -> Result<Timestamp, StoreError> {
        let now = Timestamp::now();
        let (key, resets_at) = self.period(now);
        sqlx::query(
            "INSERT INTO youtube_quota (quota_day, budget, used, exhausted_at) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (quota_day) DO UPDATE SET used = youtube_quota.budget, exhausted_at = $3",
        )
        .bind(&key)
        .bind(self.budget)
        .bind(now.to_string())
        .execute(store.pool())
        .await?;
        Ok(resets_at)
    }

    /// Units used in the current period.
    pub async fn used(&self, store: &Store) -> Result<i64, StoreError> {
        let (key, _) = self.period(Timestamp::now());
        let used: Option<i64> =
            sqlx::query_scalar("SELECT used FROM youtube_quota WHERE quota_day = $1")
                .bind(&key)
                .fetch_optional(store.pool())
                .await?;
        Ok(used.unwrap_or(0))
    }
}

/// How long to wait until `resets_at`, at least a second so a clock at the
/// boundary cannot spin.
pub fn wait_until(resets_at: Timestamp) -> Duration {
    let ms = resets_at.as_millisecond() - Timestamp::now().as_millisecond();
    Duration::from_millis(ms.max(1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_window_resets_at_midnight_in_california() {
        let quota = Quota {
            budget: 10_000,
            window: DAY,
        };
        // 07:59 UTC on 30 November is 23:59 on the 29th in Los Angeles.
        let before: Timestamp = "2026-11-30T07:59:00Z".parse().unwrap();
        let (key, resets) = quota.period(before);
        assert_eq!(key, "2026-11-29");
        assert_eq!(resets.to_string(), "2026-11-30T08:00:00Z");
        let after: Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        assert_eq!(quota.period(after).0, "2026-11-30");
        // Summer time moves the reset to 07:00 UTC.
        let july: Timestamp = "2026-07-01T06:59:59Z".parse().unwrap();
        assert_eq!(quota.period(july).1.to_string(), "2026-07-01T07:00:00Z");
    }

    #[test]
    fn short_windows_count_from_the_epoch() {
        let quota = Quota {
            budget: 5,
            window: Duration::from_secs(10),
        };
        let t: Timestamp = "2026-11-29T10:00:03Z".parse().unwrap();
        let (key, resets) = quota.period(t);
        assert_eq!(resets.to_string(), "2026-11-29T10:00:10Z");
        let later: Timestamp = "2026-11-29T10:00:10Z".parse().unwrap();
        assert_ne!(quota.period(later).0, key);
    }
}
