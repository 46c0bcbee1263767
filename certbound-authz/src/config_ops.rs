//! The keys of operations in the configuration file: `[log]`, and the step-up keys of a
//! `[[routes]]` entry (RFC 9470 `acr_values`, `max_age`).

use serde::Deserialize;

use super::{ConfigError, RawRoute};

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default)]
    pub(super) format: LogFormat,
}

/// `log.format`: how the lines on stderr are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum LogFormat {
    /// `certbound-authz: ...`, for people.
    #[default]
    Text,
    /// One JSON object per line (`{"event":"refused",...}`), for log collectors.
    Json,
}

/// A route's step-up keys (RFC 9470), checked as the library's `RequireStepUpLayer` will take
/// them.
pub(super) fn step_up(
    key: &dyn Fn(&str) -> String,
    route: &RawRoute,
) -> Result<(Option<Vec<String>>, Option<std::time::Duration>), ConfigError> {
    if route.open && (route.acr_values.is_some() || route.max_age.is_some()) {
        let name = if route.acr_values.is_some() {
            "acr_values"
        } else {
            "max_age"
        };
        return Err(ConfigError::new(
            key(name),
            "an open route needs no token, so it cannot require a step-up",
        ));
    }
    if let Some(values) = &route.acr_values {
        // Empty, or a value the challenge's `acr_values="..."` cannot carry.
        let _checked = certbound::RequireStepUpLayer::acr_values(values.iter().cloned())
            .map_err(|e| ConfigError::new(key("acr_values"), e))?;
    }
    let max_age = match route.max_age {
        None => None,
        Some(seconds) => Some(std::time::Duration::from_secs(
            u64::try_from(seconds).map_err(|_| {
                ConfigError::new(
                    key("max_age"),
                    format!("{seconds} is not a number of seconds"),
                )
            })?,
        )),
    };
    Ok((route.acr_values.clone(), max_age))
}
