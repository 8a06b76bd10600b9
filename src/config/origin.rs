//! Where a setting came from, and the one rule that decides it: a flag,
//! then its `SMM_*` variable, then the config file's profile, then the
//! built-in default.

use std::fmt;

use serde::Serialize;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Flag,
    Env,
    File,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::File => "config file",
            Origin::Default => "default",
        })
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Origin,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Origin) -> Sourced<T> {
        Sourced { value, source }
    }
}

/// The precedence rule, applied one step at a time to what a flag or its
/// variable gave (clap has already let the flag win over the variable):
/// `overrides.client_id.or_file(profile.client_id).or_default(…)`.
pub trait Combine<T> {
    /// The value given so far, else the profile's.
    fn or_file(self, from_file: Option<T>) -> Option<Sourced<T>>;
    /// The value given so far, else the built-in default.
    fn or_default(self, default: T) -> Sourced<T>;
}

impl<T> Combine<T> for Option<Sourced<T>> {
    fn or_file(self, from_file: Option<T>) -> Option<Sourced<T>> {
        self.or_else(|| from_file.map(|value| Sourced::new(value, Origin::File)))
    }

    fn or_default(self, default: T) -> Sourced<T> {
        self.unwrap_or_else(|| Sourced::new(default, Origin::Default))
    }
}
