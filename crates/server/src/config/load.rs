//! Building a [`BrokerConfig`] from its sources, highest precedence first:
//! command-line flags and `-o` overrides, `STROM_*` environment variables, the TOML
//! config file, defaults.
//!
//! The config file is TOML. Strom's own settings are the bare keys `data_dir`, `listen`,
//! `advertise` and `node_id`; every other key is a Kafka-style property name. Because
//! TOML reads an unquoted dotted key as nested tables, these are all the same property:
//!
//! ```toml
//! "log.retention.ms" = 1000
//! log.retention.ms = 1000      # a line of Kafka's server.properties is valid TOML
//! [log.retention]
//! ms = 1000
//! ```
//!
//! Nested tables are flattened back into dotted names; an unknown or duplicated name is
//! an error that names it. Each property resolves on its own, so `log.retention.ms` from
//! the file still wins over `log.retention.hours` from an override, as in Kafka.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tracing::warn;

use crate::config::BrokerConfig;
use crate::config::properties::{self, RawValue};
use crate::error::{Result, ServerError};

/// Environment variables for Strom's own settings (the flags' fallbacks).
pub const ENV_DATA_DIR: &str = "STROM_DATA_DIR";
pub const ENV_LISTEN: &str = "STROM_LISTEN";
pub const ENV_ADVERTISE: &str = "STROM_ADVERTISE";
pub const ENV_NODE_ID: &str = "STROM_NODE_ID";
pub const ENV_CONFIG: &str = "STROM_CONFIG";

/// Variables with the `STROM_` prefix that are not broker settings, so are not reported
/// as unknown.
const ENV_NOT_SETTINGS: &[&str] = &["STROM_LOG"];

/// The raw inputs to [`BrokerConfig::load`]; the CLI fills this from clap, tests fill
/// it by hand.
#[derive(Debug, Default, Clone)]
pub struct ConfigSources {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--listen HOST:PORT`.
    pub listen: Option<String>,
    /// `--advertise HOST:PORT`.
    pub advertise: Option<String>,
    /// `--node-id N`.
    pub node_id: Option<i32>,
    /// `-o key=value`, in command-line order (a later one wins).
    pub overrides: Vec<String>,
    /// The environment; only `STROM_*` variables are read.
    pub env: Vec<(String, String)>,
}

impl ConfigSources {
    /// Adds this process's `STROM_*` environment variables. Variables that are not
    /// valid Unicode cannot be Strom settings and are skipped.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars_os()
            .filter_map(|(k, v): (OsString, OsString)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| k.starts_with("STROM_"))
            .filter_map(|(k, v)| Some((k, v.into_string().ok()?)))
            .collect();
        self
    }
}

/// The TOML file: Strom's own keys, then everything else as properties.
#[derive(Debug, Deserialize)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    advertise: Option<String>,
    node_id: Option<i32>,
    #[serde(flatten)]
    properties: toml::Table,
}

impl BrokerConfig {
    /// Builds and validates the configuration from `sources`.
    pub fn load(sources: &ConfigSources) -> Result<BrokerConfig> {
        let env: HashMap<&str, &str> = sources
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let file_path = sources
            .config_file
            .clone()
            .or_else(|| env.get(ENV_CONFIG).map(PathBuf::from));
        let file = match &file_path {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let file_label = file_path
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();

        let mut config = BrokerConfig::default();

        // Strom's own settings: flag (which clap may have filled from the same variable),
        // then environment, then file.
        let f = file.as_ref();
        if let Some(dir) = sources
            .data_dir
            .clone()
            .or_else(|| env.get(ENV_DATA_DIR).map(PathBuf::from))
            .or_else(|| f.and_then(|f| f.data_dir.clone()))
        {
            config.data_dir = dir;
        }
        let layers = |flag: &Option<String>, var: &str, in_file: Option<&String>, key: &str| {
            first_set(
                flag.as_deref(),
                // The CLI fills flags from the same variables (clap `env`), so a
                // "flag" value may have come from either.
                &format!("--{key} (or {var})"),
                env.get(var).copied(),
                var,
                in_file.map(String::as_str),
                &format!("{key} in {file_label}"),
            )
        };
        let listen = layers(
            &sources.listen,
            ENV_LISTEN,
            f.and_then(|f| f.listen.as_ref()),
            "listen",
        );
        if let Some((text, source)) = listen {
            config.listen = text.parse().map_err(|e| ServerError::config(source, e))?;
        }
        let advertise = layers(
            &sources.advertise,
            ENV_ADVERTISE,
            f.and_then(|f| f.advertise.as_ref()),
            "advertise",
        );
        if let Some((text, source)) = advertise {
            config.advertise = Some(text.parse().map_err(|e| ServerError::config(source, e))?);
        }
        config.node_id = match (sources.node_id, env.get(ENV_NODE_ID)) {
            (Some(id), _) => id,
            (None, Some(text)) => text.trim().parse::<i32>().map_err(|_| {
                ServerError::config(ENV_NODE_ID, format!("'{text}' is not an integer"))
            })?,
            (None, None) => f.and_then(|f| f.node_id).unwrap_or(config.node_id),
        };
        if config.node_id < 0 {
            return Err(ServerError::config("node_id", "must not be negative"));
        }

        // Kafka-style properties: file, then environment, then overrides; each layer
        // overwrites what the previous one set.
        if let (Some(file), Some(path)) = (&file, &file_path) {
            for (name, value) in flatten(&file.properties, path)? {
                apply(&mut config, &name, &RawValue::Toml(value), || {
                    format!("{name} in {file_label}")
                })?;
            }
        }
        for property in properties::PROPERTIES {
            let var = property.env_var();
            if let Some(value) = env.get(var.as_str()) {
                let raw = RawValue::Text((*value).to_string());
                property
                    .apply(&mut config, &raw)
                    .map_err(|message| ServerError::config(&var, message))?;
            }
        }
        for entry in &sources.overrides {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| ServerError::config(format!("-o {entry}"), "expected key=value"))?;
            let name = name.trim();
            if ["data_dir", "listen", "advertise", "node_id"].contains(&name) {
                let flag = name.replace('_', "-");
                return Err(ServerError::config(
                    format!("-o {name}"),
                    format!("not a Kafka property; use --{flag}"),
                ));
            }
            apply(
                &mut config,
                name,
                &RawValue::Text(value.to_string()),
                || format!("-o {name}"),
            )?;
        }

        warn_unknown_env(&env);
        config.validate()?;
        Ok(config)
    }
}

/// The highest-precedence value of a text setting, with the name of its source.
fn first_set(
    flag: Option<&str>,
    flag_name: &str,
    env: Option<&str>,
    var: &str,
    file: Option<&str>,
    file_key: &str,
) -> Option<(String, String)> {
    let (value, source) = match (flag, env, file) {
        (Some(v), _, _) => (v, flag_name),
        (None, Some(v), _) => (v, var),
        (None, None, Some(v)) => (v, file_key),
        (None, None, None) => return None,
    };
    Some((value.to_string(), source.to_string()))
}

/// Applies one property, with an error that says where the value came from.
fn apply(
    config: &mut BrokerConfig,
    name: &str,
    value: &RawValue,
    source: impl Fn() -> String,
) -> Result<()> {
    let property = properties::find(name)
        .ok_or_else(|| ServerError::config(source(), format!("unknown property '{name}'")))?;
    property
        .apply(config, value)
        .map_err(|message| ServerError::config(source(), message))
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| ServerError::ConfigFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ServerError::ConfigFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Turns nested tables back into dotted property names. Errors name the offending key.
fn flatten(table: &toml::Table, path: &Path) -> Result<Vec<(String, toml::Value)>> {
    fn walk(
        prefix: &str,
        table: &toml::Table,
        out: &mut Vec<(String, toml::Value)>,
        path: &Path,
    ) -> Result<()> {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                // A table is a prefix of property names only if some property starts
                // with it; anything else is a misspelt key, reported below.
                toml::Value::Table(inner) if properties::find(&name).is_none() => {
                    walk(&name, inner, out, path)?;
                }
                _ => {
                    if properties::find(&name).is_none() {
                        return Err(ServerError::ConfigFile {
                            path: path.to_path_buf(),
                            message: format!("unknown key '{name}'"),
                        });
                    }
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(ServerError::ConfigFile {
                            path: path.to_path_buf(),
                            message: format!("key '{name}' is set twice"),
                        });
                    }
                    out.push((name, value.clone()));
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk("", table, &mut out, path)?;
    Ok(out)
}

/// A misspelt `STROM_*` variable would otherwise be silently ignored.
fn warn_unknown_env(env: &HashMap<&str, &str>) {
    for var in env.keys().filter(|k| k.starts_with("STROM_")) {
        let known = [
            ENV_DATA_DIR,
            ENV_LISTEN,
            ENV_ADVERTISE,
            ENV_NODE_ID,
            ENV_CONFIG,
        ]
        .contains(var)
            || ENV_NOT_SETTINGS.contains(var)
            || properties::PROPERTIES.iter().any(|p| p.env_var() == *var);
        if !known {
            warn!(variable = %var, "ignoring unknown STROM_* environment variable");
        }
    }
}
