//! Choosing the profile, and naming a place in it when a value is wrong.

use std::path::Path;

use crate::exit::UsageError;

use super::file::{ConfigFile, Profile};
use super::origin::Sourced;

/// The config file and profile the settings come from, so an error can say
/// where a wrong value sits: "FILE (profile `NAME`, key `KEY`)".
pub struct Place {
    file: String,
    profile: String,
}

impl Place {
    pub fn new(path: Option<&Path>, profile: Option<&Sourced<String>>) -> Place {
        Place {
            file: path.map_or_else(|| "(no config file)".into(), |p| p.display().to_string()),
            profile: profile.map(|p| p.value.clone()).unwrap_or_default(),
        }
    }

    /// The file's name, or "(no config file)".
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn key(&self, key: &str) -> String {
        format!("{} (profile `{}`, key `{key}`)", self.file, self.profile)
    }
}

/// The profile named by flag, variable or the file's `profile`; none named
/// means every setting comes from flags, variables and defaults.
pub fn choose(
    file: &ConfigFile,
    name: Option<&Sourced<String>>,
    place: &Place,
) -> Result<Profile, UsageError> {
    let Some(name) = name else {
        return Ok(Profile::default());
    };
    if let Some(found) = file.profiles.get(&name.value) {
        return Ok(found.clone());
    }
    let known: Vec<_> = file.profiles.keys().map(String::as_str).collect();
    Err(UsageError::new(format!(
        "profile `{}` is not defined in {}; {}",
        name.value,
        place.file(),
        if known.is_empty() {
            "the file defines no profiles; add a [profiles.NAME] table".to_string()
        } else {
            format!("defined profiles: {}", known.join(", "))
        }
    )))
}
