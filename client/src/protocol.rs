//! The deploy notification protocol, shared by the engine (which sends)
//! and applications (which listen): channel names and the payload.
//!
//! Every deploy NOTIFYs [`DEPLOY_CHANNEL`] and the package's own channel
//! ([`package_channel`]) with a [`DeployPayload`] as JSON, when its
//! transaction commits. The catalog's SQL (`schema/0004_client_api.sql`,
//! `schema/0005_sessions.sql`) LISTENs on the same package channel; it
//! spells [`CHANNEL_PREFIX`] itself, because released catalog steps are
//! never edited.

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// The channel every deploy NOTIFYs, whatever the package.
pub const DEPLOY_CHANNEL: &str = "pgpm_deploy";

/// The prefix of a package's own channel: `deployment_events$$<package>`
/// (the ancestor's name, kept so its listeners keep working).
pub const CHANNEL_PREFIX: &str = "deployment_events$$";

/// PostgreSQL's identifier limit: `LISTEN` cuts longer channel names.
const MAX_CHANNEL_BYTES: usize = 63;

/// The channel a deploy of `package` NOTIFYs, and that
/// `_pgpm.set_search_path` LISTENs on: `deployment_events$$<package>`.
///
/// Channel names are identifiers, cut at 63 bytes by PostgreSQL in
/// `LISTEN`; `pg_notify` refuses longer ones instead. The name is cut here
/// the same way, so deploy and listeners agree for long package names.
pub fn package_channel(package: &str) -> String {
    let mut channel = format!("{CHANNEL_PREFIX}{package}");
    let mut end = channel.len().min(MAX_CHANNEL_BYTES);
    while !channel.is_char_boundary(end) {
        end -= 1;
    }
    channel.truncate(end);
    channel
}

/// Whether a channel is one pgpm's deploys NOTIFY.
pub fn is_pgpm_channel(channel: &str) -> bool {
    channel == DEPLOY_CHANNEL || channel.starts_with(CHANNEL_PREFIX)
}

/// The JSON payload of a deploy notification, as the engine writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployPayload {
    pub package: String,
    /// The deployed version, in semver's canonical form.
    pub version: String,
    /// The schema deployed into; `None` for a `scope: database` package.
    #[serde(default)]
    pub schema: Option<String>,
    /// The deploy mode (`safe`, `moderate`, `unsafe`, `overwrite`,
    /// `revision`), or `remove` when `pgpm remove` dropped the version.
    #[serde(default)]
    pub mode: Option<String>,
}

impl DeployPayload {
    /// The payload as sent: compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a payload of strings serialises")
    }
}

/// A deploy of a package version, from a pgpm NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployEvent {
    /// The channel it arrived on: [`DEPLOY_CHANNEL`] or a [`package_channel`].
    pub channel: String,
    pub package: String,
    pub version: Version,
    /// The schema deployed into; `None` for a `scope: database` package.
    pub schema: Option<String>,
    /// The deploy mode (`safe`, `moderate`, `unsafe`, `overwrite`,
    /// `revision`), or `remove` when `pgpm remove` dropped the version.
    pub mode: Option<String>,
}

impl DeployEvent {
    /// Reads a notification's payload: a [`DeployPayload`] as JSON, or on
    /// a package channel the ancestor's `MAJOR_MINOR_PATCH` (which pgpm
    /// sends there for the ancestor's `config.json` packages, whose
    /// listeners expect it); the package is then the channel's.
    pub fn parse(channel: &str, payload: &str) -> Result<DeployEvent, ClientError> {
        let bad = |reason: String| ClientError::BadEvent {
            channel: channel.to_string(),
            payload: payload.to_string(),
            reason,
        };
        if let Some(package) = channel.strip_prefix(CHANNEL_PREFIX)
            && let Some(version) = ancestor_version(payload)
        {
            return Ok(DeployEvent {
                channel: channel.to_string(),
                package: package.to_string(),
                version,
                schema: None,
                mode: None,
            });
        }
        let p: DeployPayload = serde_json::from_str(payload).map_err(|e| bad(e.to_string()))?;
        let version = Version::parse(&p.version).map_err(|e| bad(e.to_string()))?;
        Ok(DeployEvent {
            channel: channel.to_string(),
            package: p.package,
            version,
            schema: p.schema,
            mode: p.mode,
        })
    }

    pub(crate) fn from_notification(
        n: &postgres::Notification,
    ) -> Result<DeployEvent, ClientError> {
        DeployEvent::parse(n.channel(), n.payload())
    }
}

/// The ancestor's payload, `1_9_0`.
fn ancestor_version(payload: &str) -> Option<Version> {
    let parts: Vec<u64> = payload
        .split('_')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts[..] {
        [major, minor, patch] => Some(Version::new(major, minor, patch)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_cut_like_listen_cuts_them() {
        assert_eq!(package_channel("billing"), "deployment_events$$billing");
        let long = "p".repeat(80);
        assert_eq!(package_channel(&long).len(), 63);
        // A multi-byte character is never split.
        let wide = "é".repeat(40);
        let channel = package_channel(&wide);
        assert!(channel.len() <= 63 && channel.is_char_boundary(channel.len()));
        assert!(is_pgpm_channel(&channel) && is_pgpm_channel(DEPLOY_CHANNEL));
        assert!(!is_pgpm_channel("app_events"));
    }

    #[test]
    fn the_payload_round_trips() {
        let payload = DeployPayload {
            package: "billing".into(),
            version: "1.4.0".into(),
            schema: Some("billing_1_4_0".into()),
            mode: Some("safe".into()),
        };
        let event = DeployEvent::parse("pgpm_deploy", &payload.to_json()).unwrap();
        assert_eq!(event.version, Version::new(1, 4, 0));
        assert_eq!(event.schema.as_deref(), Some("billing_1_4_0"));
        let ancestor = DeployEvent::parse("deployment_events$$billing", "1_9_0").unwrap();
        assert_eq!(
            (ancestor.package.as_str(), ancestor.version),
            ("billing", Version::new(1, 9, 0))
        );
        assert!(DeployEvent::parse("pgpm_deploy", "1_9_0").is_err());
        assert!(matches!(
            DeployEvent::parse("pgpm_deploy", "{\"package\":\"x\"}"),
            Err(ClientError::BadEvent { .. })
        ));
    }
}
