//! Secrets: reading them from where the file points, and telling which
//! settings hold one so they are masked wherever a setting is shown.

use crate::exit::UsageError;

use super::profile::Place;

/// A value kept out of the config file: `{ file = "/run/secrets/kafka" }`
/// reads a file (one trailing newline dropped), `{ env = "KAFKA_PASSWORD" }`
/// a variable. Errors name the file or variable, never what it holds.
pub fn secret_reference(reference: &toml::map::Map<String, toml::Value>) -> Result<String, String> {
    let field = |name: &str| reference.get(name).and_then(toml::Value::as_str);
    match (field("file"), field("env"), reference.len()) {
        (Some(path), None, 1) => std::fs::read_to_string(path)
            .map(|text| text.strip_suffix('\n').unwrap_or(&text).to_string())
            .map_err(|e| format!("cannot read the secret file {path}: {e}")),
        (None, Some(var), 1) => {
            std::env::var(var).map_err(|_| format!("the environment variable {var} is not set"))
        }
        _ => Err("expected { file = \"…\" } or { env = \"…\" }".into()),
    }
}

/// [`secret_reference`] for the profile key `key`, whose name the error
/// carries.
pub fn read_secret(
    reference: &toml::map::Map<String, toml::Value>,
    place: &Place,
    key: &str,
) -> Result<String, UsageError> {
    secret_reference(reference).map_err(|why| UsageError::new(format!("{}: {why}", place.key(key))))
}

/// Settings names that hold secrets, in librdkafka and in our own config.
/// When in doubt a value is masked: a hidden setting costs a look at the
/// file, a leaked one costs a rotation.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "api.key",
        "apikey",
        "key.pem",
        "private",
        "credential",
        "jaas",
        "assertion",
    ]
    .iter()
    .any(|s| key.contains(s))
        || key == "sasl.oauthbearer.config"
}

/// Masks the password in a database URL or connection string:
/// `postgres://user:pw@host/db`, `?password=…` query parameters, and libpq's
/// `host=… password=…` form. Passwords may contain `/`, `?` or `#`
/// unescaped, so the user information runs to the last `@`.
pub fn mask_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://")
        && let Some(at) = out.rfind('@')
        && at > scheme_end
    {
        let userinfo = &out[scheme_end + 3..at];
        if let Some(colon) = userinfo.find(':') {
            let start = scheme_end + 3 + colon + 1;
            out.replace_range(start..at, "****");
        }
    }
    mask_password_fields(&out)
}

/// `password=…` up to the next `&`, `;` or space, wherever it appears.
fn mask_password_fields(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let value_start = i + found + "password=".len();
        out.push_str(&text[i..value_start]);
        let value_end = text[value_start..]
            .find(['&', ';', ' '])
            .map_or(text.len(), |e| value_start + e);
        out.push_str("****");
        i = value_end;
    }
    out.push_str(&text[i..]);
    out
}
