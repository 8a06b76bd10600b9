//! Small checks shared by the payload types.
//!
//! Messages should echo the offending value so a dead letter is fixable from
//! its error alone; [`shown`] caps what is echoed because the value came from
//! the wire and may be arbitrarily large.

use super::ValidationError;

type Check = Result<(), ValidationError>;

/// Longest slice of a foreign string quoted back in an error message.
const MAX_SHOWN_CHARS: usize = 64;

pub(super) fn shown(value: &str) -> String {
    match value.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// Database ids start at 1; zero or a negative id is always a producer bug.
pub(super) fn id(field: &str, value: i64) -> Check {
    positive(field, value)
}

pub(super) fn positive(field: &str, value: i64) -> Check {
    if value > 0 {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be greater than zero (got {value})"),
        ))
    }
}

pub(super) fn non_negative(field: &str, value: i64) -> Check {
    if value >= 0 {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must not be negative (got {value})"),
        ))
    }
}

/// Blank counts as empty: a whitespace-only id or body is as useless
/// downstream as a missing one.
pub(super) fn non_empty(field: &str, value: &str) -> Check {
    if value.trim().is_empty() {
        Err(ValidationError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}

pub(super) fn optional_non_empty(field: &str, value: Option<&str>) -> Check {
    value.map_or(Ok(()), |value| non_empty(field, value))
}

/// Amounts are minor units of an ISO 4217 currency, so the code decides how
/// to read them; a lowercase or misspelled code would silently mis-scale.
pub(super) fn currency(field: &str, value: &str) -> Check {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "must be a three-letter uppercase ISO 4217 code such as \"USD\" (got {})",
                shown(value)
            ),
        ))
    }
}

pub(super) fn percent(field: &str, value: u8) -> Check {
    if value <= 100 {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between 0 and 100 (got {value})"),
        ))
    }
}

/// Workers open this URL; anything but http(s) is either garbage or an
/// attempt to make a worker read local files.
pub(super) fn http_url(field: &str, value: &str) -> Check {
    let lower = value.trim_start().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(host) if !host.trim().is_empty() => Ok(()),
        _ => Err(ValidationError::new(
            field,
            format!("must be an http:// or https:// URL (got {})", shown(value)),
        )),
    }
}

/// The id is interpolated into YouTube API calls and URLs, so restrict it to
/// the alphabet YouTube uses; the length is not pinned because YouTube has
/// never promised it.
pub(super) fn youtube_video_id(field: &str, value: &str) -> Check {
    non_empty(field, value)?;
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!(
                "must contain only letters, digits, '-' and '_' (got {})",
                shown(value)
            ),
        ))
    }
}
