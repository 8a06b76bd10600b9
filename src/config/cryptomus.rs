//! Where the webhook and refund workers reach Cryptomus, the payment
//! provider.

use serde::Deserialize;

use crate::exit::UsageError;

use super::file::wrong_type;
use super::origin::{Combine, Sourced};
use super::profile::Place;
use super::secrets::read_secret;

pub const DEFAULT_CRYPTOMUS_URL: &str = "https://api.cryptomus.com";

/// The `cryptomus` table of a profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptomusFile {
    /// A string, or `{ file = … }` / `{ env = … }` to keep it out of the file.
    pub api_key: Option<toml::Value>,
    pub merchant: Option<String>,
    pub base_url: Option<String>,
}

/// The Cryptomus settings in effect. The API key is secret: `config show`
/// masks it and no message prints it.
#[derive(Debug, Clone)]
pub struct Cryptomus {
    pub api_key: Option<Sourced<String>>,
    pub merchant: Option<Sourced<String>>,
    pub base_url: Sourced<String>,
}

/// What `SMM_CRYPTOMUS_*` gave, before the file is read.
#[derive(Debug, Default, Clone)]
pub struct CryptomusOverrides {
    pub api_key: Option<Sourced<String>>,
    pub merchant: Option<Sourced<String>>,
    pub base_url: Option<Sourced<String>>,
}

impl Cryptomus {
    pub fn resolve(
        given: CryptomusOverrides,
        file: &CryptomusFile,
        place: &Place,
    ) -> Result<Cryptomus, UsageError> {
        let file_api_key = match &file.api_key {
            None => None,
            Some(toml::Value::String(key)) => Some(key.clone()),
            Some(toml::Value::Table(reference)) => {
                Some(read_secret(reference, place, "cryptomus.api_key")?)
            }
            Some(other) => {
                return Err(wrong_type(
                    "value",
                    "cryptomus.api_key",
                    place,
                    "a string, { file = \"…\" } or { env = \"…\" }",
                    other,
                ));
            }
        };
        Ok(Cryptomus {
            api_key: given.api_key.or_file(file_api_key),
            merchant: given.merchant.or_file(file.merchant.clone()),
            base_url: given
                .base_url
                .or_file(file.base_url.clone())
                .or_default(DEFAULT_CRYPTOMUS_URL.into()),
        })
    }
}
