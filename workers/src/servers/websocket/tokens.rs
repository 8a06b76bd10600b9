//! Connection tokens: minted by the panel for a user, verified by the
//! server before the upgrade.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use jiff::Timestamp;
use sha2::Sha256;

/// Tokens longer than this are rejected before any parsing or hashing.
const MAX_TOKEN_LEN: usize = 256;

const TOKEN_VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a connection token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the token is malformed ({0}); expected v1.<user id>.<expiry in unix seconds>.<signature> as issued by the panel"
    )]
    Malformed(&'static str),
    #[error(
        "the token's signature does not match: it was altered, or signed with another secret; ask the panel for a new token"
    )]
    BadSignature,
    #[error("the token expired at {expired_at}; ask the panel for a new token")]
    Expired { expired_at: Timestamp },
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length (long ones are hashed first), so
    // this cannot fail; the match only spares the fallible signature.
    match <HmacSha256 as hmac::Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

/// A token that lets `user_id` connect until `expires_at` (to the second).
pub fn mint_token(secret: &[u8], user_id: i64, expires_at: Timestamp) -> String {
    let signed = format!("{TOKEN_VERSION}.{user_id}.{}", expires_at.as_second());
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// The user id a token was minted for, if it is intact and not expired
/// at `now`.
pub fn verify_token(secret: &[u8], token: &str, now: Timestamp) -> Result<i64, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return Err(TokenError::Malformed("no signature"));
    };
    let mut parts = signed.split('.');
    let (Some(version), Some(user), Some(expiry), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("wrong number of fields"));
    };
    if version != TOKEN_VERSION {
        return Err(TokenError::Malformed("unknown version"));
    }
    // Digits only: `+7` or `007` would parse to a user id too, and a token
    // is easier to reason about when each user id has one spelling.
    let canonical = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if !canonical(user) {
        return Err(TokenError::Malformed("the user id is not a number"));
    }
    let user_id: i64 = user
        .parse()
        .map_err(|_| TokenError::Malformed("the user id is out of range"))?;
    let expiry_ok = canonical(expiry) || expiry.strip_prefix('-').is_some_and(canonical);
    if !expiry_ok {
        return Err(TokenError::Malformed("the expiry is not a number"));
    }
    let expires: i64 = expiry
        .parse()
        .map_err(|_| TokenError::Malformed("the expiry is out of range"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    let mut mac = mac(secret);
    mac.update(signed.as_bytes());
    // Checked before the expiry, so a forged token learns nothing else.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let expired_at = Timestamp::from_second(expires)
        .map_err(|_| TokenError::Malformed("the expiry is out of range"))?;
    if expired_at <= now {
        return Err(TokenError::Expired { expired_at });
    }
    Ok(user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test secret, long enough to be real";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_minted_token_verifies_to_its_user_until_it_expires() {
        let token = mint_token(SECRET, 42, at(2_000_000_000));
        assert!(token.starts_with("v1.42.2000000000."), "{token}");
        assert_eq!(verify_token(SECRET, &token, at(1_999_999_999)), Ok(42));
        assert_eq!(
            verify_token(SECRET, &token, at(2_000_000_000)),
            Err(TokenError::Expired {
                expired_at: at(2_000_000_000)
            })
        );
    }

    #[test]
    fn a_token_with_another_user_id_fails_its_signature() {
        let token = mint_token(SECRET, 42, at(2_000_000_000));
        let tampered = token.replacen("v1.42.", "v1.43.", 1);
        assert_eq!(
            verify_token(SECRET, &tampered, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
        let later = token.replacen(".2000000000.", ".2000000001.", 1);
        assert_eq!(
            verify_token(SECRET, &later, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_from_another_secret_fails_its_signature() {
        let token = mint_token(b"another secret", 42, at(2_000_000_000));
        assert_eq!(
            verify_token(SECRET, &token, at(1_000_000_000)),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_expired_token_is_refused_even_when_intact() {
        let token = mint_token(SECRET, 7, at(1_000));
        let error = verify_token(SECRET, &token, at(1_001)).unwrap_err();
        assert_eq!(
            error,
            TokenError::Expired {
                expired_at: at(1_000)
            }
        );
        assert!(error.to_string().contains("ask the panel for a new token"));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = mint_token(SECRET, 7, at(2_000_000_000));
        let signature = good.rsplit_once('.').unwrap().1;
        for (token, why) in [
            ("", "no signature"),
            ("v1", "no signature"),
            ("v1.7.2000000000", "wrong number of fields"),
            (&format!("v2.7.2000000000.{signature}"), "unknown version"),
            (
                &format!("v1.+7.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.07.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.x.2000000000.{signature}"),
                "the user id is not a number",
            ),
            (
                &format!("v1.7.soon.{signature}"),
                "the expiry is not a number",
            ),
            (
                "v1.7.2000000000.not*base64",
                "the signature is not base64url",
            ),
            (&format!("v1.7.2000000000.{}", "A".repeat(300)), "too long"),
        ] {
            assert_eq!(
                verify_token(SECRET, token, at(0)),
                Err(TokenError::Malformed(why)),
                "{token}"
            );
        }
        // A tampered signature that still decodes is a signature failure.
        let mut chars: Vec<char> = good.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert_eq!(
            verify_token(SECRET, &flipped, at(0)),
            Err(TokenError::BadSignature)
        );
    }
}
