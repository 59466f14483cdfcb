//! `[announce]` of `pgpm.toml`: who hears of a deploy run with
//! `--announce`.
//!
//! ```toml
//! [announce.email]
//! server = "smtp.example.com"     # STARTTLS on port 587 unless said otherwise
//! username = "${SMTP_USER}"
//! password = "${SMTP_PASSWORD}"   # only as a variable: never in the file
//! from = "pgpm <deploy@example.com>"
//! to = ["dba@example.com"]
//!
//! [[announce.webhook]]
//! url = "https://jira.example.com/rest/api/2/issue/{issue}/comment"
//! template = "comment"            # {"body": text}; "report" posts the JSON report
//! headers = { Authorization = "Bearer ${JIRA_TOKEN}" }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The hooks of `[announce]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    pub email: Option<Email>,
    #[serde(default)]
    pub webhook: Vec<Webhook>,
}

impl Announce {
    /// Whether any hook is configured.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.webhook.is_empty()
    }
}

/// An e-mail over SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub server: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM file of the certificate authority to trust for the server
    /// (a private one); default: the system's.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    /// Only as `${VAR}`.
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// Default: `pgpm: deployed ... to ...`.
    pub subject: Option<String>,
}

/// How the SMTP connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the start (SMTPS).
    Tls,
    /// No encryption (a relay on localhost).
    None,
}

/// An HTTP POST of the deploy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `{issue}` in it is replaced by the deploy's `--issue-ref`.
    pub url: String,
    #[serde(default)]
    pub template: WebhookTemplate,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// What a webhook posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookTemplate {
    /// The deploy's JSON report, as `--json` prints it.
    #[default]
    Report,
    /// `{"body": TEXT}`: an issue comment, as JIRA's REST API takes it.
    Comment,
}
