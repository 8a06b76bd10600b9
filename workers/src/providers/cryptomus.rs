//! Cryptomus, the panel's payment provider: webhook signatures, the
//! webhook body, and its refund API.
//!
//! Cryptomus signs `md5(base64(json) + api_key)`, where `json` is the body
//! without its `sign` field as PHP's `json_encode` writes it: compact, keys
//! in their original order, non-ASCII as is, and `/` escaped as `\/`. That
//! last detail is the classic reason a correct key fails to verify.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::contract::events::{PaymentConfirmation, PaymentStatus};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook body is not a JSON object: {0}")]
    NotJson(String),
    #[error("the webhook has no `sign` field")]
    Unsigned,
    #[error("the webhook's signature does not match (wrong API key, or the body was altered)")]
    BadSignature,
    #[error("the webhook field `{field}` is missing or invalid: {reason}")]
    Field { field: &'static str, reason: String },
}

impl WebhookError {
    /// The class written into the dead letter's exception header.
    pub fn class(&self) -> &'static str {
        match self {
            WebhookError::NotJson(_) => "smmctl.webhooks.MalformedWebhook",
            WebhookError::Unsigned | WebhookError::BadSignature => "smmctl.webhooks.BadSignature",
            WebhookError::Field { .. } => "smmctl.webhooks.InvalidWebhook",
        }
    }
}

/// JSON as PHP's `json_encode` writes it (with `JSON_UNESCAPED_UNICODE`):
/// compact, keys in order, `/` escaped as `\/`, U+2028 and U+2029 escaped,
/// other non-ASCII as is, and floats in PHP's shortest form with a signed
/// exponent (`1.0e+25`, where serde_json writes `1e25`).
pub fn php_json(value: &Value) -> String {
    let mut out = String::new();
    write_php(value, &mut out);
    out
}

fn write_php(value: &Value, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) => out.push_str(&value.to_string()),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&php_float(&n.to_string()));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(text) => write_php_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_php(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_php_string(key, out);
                out.push(':');
                write_php(item, out);
            }
            out.push('}');
        }
    }
}

fn write_php_string(text: &str, out: &mut String) {
    // serde_json escapes quotes, backslashes and control characters the
    // way PHP does; PHP also escapes the solidus and the two line
    // terminators JavaScript cannot hold in a string literal.
    let quoted = Value::String(text.to_owned()).to_string();
    for c in quoted.chars() {
        match c {
            '/' => out.push_str("\\/"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// serde_json's shortest float text in PHP's spelling: a mantissa with a
/// decimal point and an exponent with its sign.
fn php_float(text: &str) -> String {
    match text.split_once('e') {
        None => text.to_owned(),
        Some((mantissa, exponent)) => {
            let mantissa = if mantissa.contains('.') {
                mantissa.to_owned()
            } else {
                format!("{mantissa}.0")
            };
            let exponent = if exponent.starts_with('-') {
                exponent.to_owned()
            } else {
                format!("+{}", exponent.trim_start_matches('+'))
            };
            format!("{mantissa}e{exponent}")
        }
    }
}

pub fn sign(json: &str, api_key: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(json.as_bytes());
    let digest = Md5::new()
        .chain_update(encoded.as_bytes())
        .chain_update(api_key.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a forged signature was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Parses a raw webhook body into its fields, without checking the
/// signature (the gateway's structural check).
pub fn parse(body: &str) -> Result<Map<String, Value>, WebhookError> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(WebhookError::NotJson(format!(
            "found {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ))),
        Err(e) => Err(WebhookError::NotJson(e.to_string())),
    }
}

/// Checks a webhook's signature and returns its body.
pub fn verify(body: &str, api_key: &str) -> Result<Webhook, WebhookError> {
    let mut fields = parse(body)?;
    // shift_remove, not remove: removing by swapping would move the last
    // field into `sign`'s place, change the order, and break the hash.
    let Some(Value::String(given)) = fields.shift_remove("sign") else {
        return Err(WebhookError::Unsigned);
    };
    let expected = sign(&php_json(&Value::Object(fields.clone())), api_key);
    if !same(&given.to_ascii_lowercase(), &expected) {
        return Err(WebhookError::BadSignature);
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| WebhookError::Field {
        field: "body",
        reason: e.to_string(),
    })
}

/// The fields of a payment webhook the panel uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub uuid: String,
    #[serde(default)]
    pub order_id: Option<String>,
    pub amount: String,
    pub currency: String,
    pub status: String,
    /// The panel puts `{"user_id": …, "order_ids": […]}` here when it
    /// creates the invoice; Cryptomus sends it back untouched.
    #[serde(default)]
    pub additional_data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PanelData {
    user_id: i64,
    #[serde(default)]
    order_ids: Vec<i64>,
}

/// A decimal amount such as `"12.5"` in minor units (1250), without
/// floating point. More than two decimals is refused, not rounded.
pub fn minor_units(amount: &str) -> Result<i64, String> {
    let text = amount.trim();
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 2);
    if !digits(whole) || !fraction_ok {
        return Err(format!(
            "`{amount}` is not an amount with at most two decimals"
        ));
    }
    let cents = format!("{:0<2}", fraction.unwrap_or(""));
    whole
        .parse::<i64>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(cents.parse::<i64>().ok()?))
        .ok_or_else(|| format!("`{amount}` is too large"))
}

impl Webhook {
    /// The confirmation this webhook stands for, or `None` when its status
    /// does not mean the money arrived (pending, failed, cancelled…).
    pub fn confirmation(
        &self,
        confirmed_at: jiff::Timestamp,
    ) -> Result<Option<PaymentConfirmation>, WebhookError> {
        let status = match self.status.as_str() {
            "paid" => PaymentStatus::Paid,
            "paid_over" => PaymentStatus::PaidOver,
            _ => return Ok(None),
        };
        let data: PanelData = self
            .additional_data
            .as_deref()
            .ok_or_else(|| "absent; the panel sets it on every invoice".to_string())
            .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()))
            .map_err(|reason| WebhookError::Field {
                field: "additional_data",
                reason,
            })?;
        let amount_minor = minor_units(&self.amount).map_err(|reason| WebhookError::Field {
            field: "amount",
            reason,
        })?;
        Ok(Some(PaymentConfirmation {
            payment_id: self.uuid.clone(),
            provider: "cryptomus".into(),
            user_id: data.user_id,
            order_ids: data.order_ids,
            amount_minor,
            currency: self.currency.to_ascii_uppercase(),
            status,
            confirmed_at,
        }))
    }
}

/// How a provider call failed, which decides retry or dead letter.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 5xx, timeouts and connection failures: the refund id makes a retry
    /// safe.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// 4xx: the provider refuses this request as it is.
    #[error("the payment provider refused the refund (HTTP {status}): {body}")]
    Refused { status: u16, body: String },
}

/// The provider's refund API.
#[derive(Debug, Clone)]
pub struct RefundApi {
    pub base_url: String,
    pub merchant: String,
    pub api_key: String,
    pub client: reqwest::Client,
}

impl RefundApi {
    pub fn new(
        base_url: &str,
        merchant: &str,
        api_key: &str,
        timeout: std::time::Duration,
    ) -> Result<RefundApi, reqwest::Error> {
        Ok(RefundApi {
            base_url: base_url.trim_end_matches('/').to_owned(),
            merchant: merchant.to_owned(),
            api_key: api_key.to_owned(),
            client: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }

    /// Refunds `amount_minor` of `payment_id`. The refund id travels as the
    /// idempotency key, so a retry after a timeout cannot pay twice.
    pub async fn refund(
        &self,
        refund_id: &str,
        payment_id: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<String, ProviderError> {
        let body = serde_json::json!({
            "uuid": payment_id,
            "amount": format!("{}.{:02}", amount_minor / 100, amount_minor % 100),
            "currency": currency,
            "is_subtract": true,
            "refund_id": refund_id,
        })
        .to_string();
        let response = self
            .client
            .post(format!("{}/v1/payment/refund", self.base_url))
            .header("merchant", &self.merchant)
            .header("sign", sign(&body.replace('/', "\\/"), &self.api_key))
            .header("idempotency-key", refund_id)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(without_url(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(300).collect();
        if status.is_success() {
            Ok(excerpt)
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(ProviderError::Unavailable(format!(
                "HTTP {status}: {excerpt}"
            )))
        } else {
            Err(ProviderError::Refused {
                status: status.as_u16(),
                body: excerpt,
            })
        }
    }
}

/// reqwest's message, which names the URL (never a secret here, since the
/// key travels in a header) and the cause.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

/// A Cryptomus payment webhook body for the panel's invoice, signed with
/// `api_key` as Cryptomus signs it. For `smmctl simulate` and the tests.
pub fn signed_webhook(
    api_key: &str,
    payment_id: &str,
    amount: &str,
    currency: &str,
    user_id: i64,
    order_ids: &[i64],
) -> String {
    let additional = serde_json::json!({ "user_id": user_id, "order_ids": order_ids }).to_string();
    let mut body = serde_json::json!({
        "type": "payment",
        "uuid": payment_id,
        "order_id": format!("invoice/{payment_id}"),
        "amount": amount,
        "currency": currency,
        "status": "paid",
        "additional_data": additional,
    });
    let signature = sign(&php_json(&body), api_key);
    body["sign"] = Value::String(signature);
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made-up key; the expected digest below was computed independently,
    // with Python's hashlib and base64.
    const KEY: &str = "test-api-key";

    fn signed(body_without_sign: &str) -> String {
        let value: Value = serde_json::from_str(body_without_sign).unwrap();
        let sign = sign(&php_json(&value), KEY);
        let mut map = match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        map.insert("sign".into(), Value::String(sign));
        Value::Object(map).to_string()
    }

    #[test]
    fn php_json_escapes_the_solidus_and_keeps_unicode() {
        let value: Value =
            serde_json::from_str(r#"{"url":"https://x.io/a","name":"Zoë","n":1}"#).unwrap();
        assert_eq!(
            php_json(&value),
            r#"{"url":"https:\/\/x.io\/a","name":"Zoë","n":1}"#
        );
    }

    #[test]
    fn php_json_spells_floats_and_line_terminators_as_php_does() {
        let value: Value =
            serde_json::from_str(r#"{"a":1e25,"b":0.5,"c":-2.5e-7,"d":10,"e":"x\u2028y"}"#)
                .unwrap();
        assert_eq!(
            php_json(&value),
            r#"{"a":1.0e+25,"b":0.5,"c":-2.5e-7,"d":10,"e":"x\u2028y"}"#
        );
    }

    #[test]
    fn a_number_too_large_for_an_integer_signs_and_verifies_alike() {
        // Found by the webhook fuzz target: without exact float parsing,
        // a number read back from the signed body could differ in its last
        // digit from the one that was signed.
        let body = r#"{"":12220222222444404222224444044441}"#;
        let value: Value = serde_json::from_str(body).unwrap();
        let sign = sign(&php_json(&value), KEY);
        let mut map = match value {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        map.insert("sign".into(), Value::String(sign));
        let signed = Value::Object(map).to_string();
        assert_ne!(
            verify(&signed, KEY),
            Err(WebhookError::BadSignature),
            "{signed}"
        );
    }

    #[test]
    fn signature_is_md5_of_base64_plus_key() {
        // base64('{"a":"b"}') = eyJhIjoiYiJ9; md5("eyJhIjoiYiJ9" + "k").
        assert_eq!(
            sign(r#"{"a":"b"}"#, "k"),
            "c6e57318ca4f4c9eee0abd37c6478bca"
        );
    }

    #[test]
    fn a_signed_webhook_verifies_and_a_changed_one_does_not() {
        let body = signed(
            r#"{"type":"payment","uuid":"u-1","order_id":"o/1","amount":"10.50","currency":"USD","status":"paid","additional_data":"{\"user_id\":7,\"order_ids\":[3]}"}"#,
        );
        let webhook = verify(&body, KEY).expect("verifies");
        let confirmation = webhook
            .confirmation(jiff::Timestamp::UNIX_EPOCH)
            .unwrap()
            .expect("paid confirms");
        assert_eq!(confirmation.amount_minor, 1050);
        assert_eq!(confirmation.user_id, 7);
        assert_eq!(confirmation.order_ids, [3]);
        assert_eq!(verify(&body, "other-key"), Err(WebhookError::BadSignature));
        let tampered = body.replace("10.50", "99.50");
        assert_eq!(verify(&tampered, KEY), Err(WebhookError::BadSignature));
        assert_eq!(verify("{\"uuid\":\"x\"}", KEY), Err(WebhookError::Unsigned));
        assert!(matches!(
            verify("not json", KEY),
            Err(WebhookError::NotJson(_))
        ));
    }

    #[test]
    fn a_sign_field_first_in_the_body_still_verifies() {
        // Regression: removing `sign` by swapping moved the last field into
        // its place, so a provider that sends `sign` first never verified.
        let fields = r#"{"uuid":"u-3","amount":"2","currency":"USD","status":"paid"}"#;
        let sign = sign(&php_json(&serde_json::from_str(fields).unwrap()), KEY);
        let body = fields.replacen('{', &format!("{{\"sign\":\"{sign}\","), 1);
        assert!(verify(&body, KEY).is_ok(), "{body}");
    }

    #[test]
    fn unsettled_statuses_confirm_nothing() {
        let body = signed(
            r#"{"uuid":"u-2","amount":"1","currency":"USD","status":"process","additional_data":"{\"user_id\":1}"}"#,
        );
        let webhook = verify(&body, KEY).unwrap();
        assert_eq!(webhook.confirmation(jiff::Timestamp::UNIX_EPOCH), Ok(None));
    }

    #[test]
    fn amounts_become_minor_units_without_floats() {
        assert_eq!(minor_units("10"), Ok(1000));
        assert_eq!(minor_units("10.5"), Ok(1050));
        assert_eq!(minor_units("0.07"), Ok(7));
        for bad in ["", "1.234", "-1", "1e3", "1.", ".5", "99999999999999999999"] {
            assert!(minor_units(bad).is_err(), "{bad:?} accepted");
        }
    }
}
