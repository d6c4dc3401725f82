//! The configuration file: TOML, flattened into settings; the `[ci]` table
//! is parsed on its own ([`super::ci`]).

use std::path::Path;

use super::settings::{Raw, Setting};
use super::{CiConfig, ConfigError, Source};

/// Flattens the TOML file into `raw`, refusing unknown keys and values that
/// are neither strings nor integers; returns the `[ci]` section, parsed.
pub(super) fn read_file(
    path: &Path,
    text: &str,
    raw: &mut Raw,
) -> Result<Option<CiConfig>, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map(|before| format!("line {}: ", before.matches('\n').count() + 1))
            .unwrap_or_default();
        let message: Vec<&str> = e.message().lines().map(str::trim).collect();
        ConfigError::Syntax {
            path: path.to_owned(),
            message: format!("{line}{}", message.join("; ")),
        }
    })?;
    let ci = match table.remove("ci") {
        None => None,
        Some(toml::Value::Table(ci)) => Some(
            CiConfig::from_toml(ci)
                .map_err(|e| ConfigError::Conflict(format!("{}: [ci]: {e}", path.display())))?,
        ),
        Some(_) => {
            return Err(ConfigError::Conflict(format!(
                "{}: `ci` must be a table ([ci])",
                path.display()
            )))
        }
    };
    flatten(path, "", &table, raw)?;
    Ok(ci)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    raw: &mut Raw,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            if matches!(
                dotted.as_str(),
                "tls"
                    | "log"
                    | "expiry"
                    | "limits"
                    | "keys"
                    | "airgap"
                    | "store"
                    | "peers"
                    | "tsa"
                    | "portal"
            ) {
                flatten(path, &dotted, inner, raw)?;
                continue;
            }
        }
        let Some(key) = Setting::from_name(&dotted) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: dotted,
            });
        };
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Invalid {
                    key: key.name(),
                    value: other.to_string(),
                    origin: Source::File(path.to_owned()),
                    expected: format!("expected a string, not a {}", other.type_str()),
                })
            }
        };
        raw.insert(key, (text, Source::File(path.to_owned())));
    }
    Ok(())
}
