//! Telling people of a rollout (`deploy --announce`): an e-mail over SMTP
//! and HTTP webhooks, as `[announce]` of `pgpm.toml` configures them.
//!
//! Announcing comes after the deploy committed and never undoes it: each
//! hook's outcome is returned for the caller to report, and a failed one
//! does not stop the others.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport as _};

use crate::config::announce::{Announce, Email, SmtpTls, Webhook, WebhookTemplate};
use crate::util::percent_encode;

/// How long a hook may take to answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// What is announced.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// One line: what was deployed where.
    pub subject: String,
    /// The deploy for people, a line per target and package.
    pub text: String,
    /// The deploy's JSON report (as `--json` prints it).
    pub report: serde_json::Value,
    /// The deploy's `--issue-ref`, for `{issue}` in webhook URLs.
    pub issue: Option<String>,
}

/// One hook's outcome.
#[derive(Debug)]
pub struct Sent {
    /// `e-mail to a@example.com` or `webhook https://...`.
    pub hook: String,
    pub result: Result<(), AnnounceError>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("cannot read the certificate authority {}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Email(String),
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("the webhook URL has {{issue}} but the deploy has no --issue-ref")]
    NoIssue,
    #[error(transparent)]
    Http(#[from] Box<ureq::Error>),
}

/// Runs every hook of `hooks`, each once, and says how each went.
pub fn announce(hooks: &Announce, what: &Announcement) -> Vec<Sent> {
    let mut sent = Vec::new();
    if let Some(email) = &hooks.email {
        sent.push(Sent {
            hook: format!("e-mail to {}", email.to.join(", ")),
            result: send_email(email, what),
        });
    }
    for hook in &hooks.webhook {
        sent.push(Sent {
            hook: format!("webhook {}", redact_url(&hook.url)),
            result: post(hook, what),
        });
    }
    sent
}

fn send_email(email: &Email, what: &Announcement) -> Result<(), AnnounceError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| AnnounceError::Email(format!("{what}: {e}"));
    let mut message = Message::builder()
        .from(email.from.parse().map_err(|e| bad("from", &e))?)
        .subject(
            email
                .subject
                .clone()
                .unwrap_or_else(|| what.subject.clone()),
        )
        .header(ContentType::TEXT_PLAIN);
    for to in &email.to {
        message = message.to(to.parse().map_err(|e| bad("to", &e))?);
    }
    let message = message
        .body(what.text.clone())
        .map_err(|e| bad("message", &e))?;
    let mut tls = TlsParameters::builder(email.server.clone());
    if let Some(path) = &email.ca_file {
        let pem = std::fs::read(path).map_err(|source| AnnounceError::CaFile {
            path: path.clone(),
            source,
        })?;
        tls = tls.add_root_certificate(Certificate::from_pem(&pem)?);
    }
    let (tls, port) = match email.tls {
        SmtpTls::Starttls => (Tls::Required(tls.build()?), 587),
        SmtpTls::Tls => (Tls::Wrapper(tls.build()?), 465),
        SmtpTls::None => (Tls::None, 25),
    };
    let mut transport = SmtpTransport::builder_dangerous(&email.server)
        .port(email.port.unwrap_or(port))
        .tls(tls)
        .timeout(Some(TIMEOUT));
    if let Some(user) = &email.username {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            email.password.clone().unwrap_or_default(),
        ));
    }
    transport.build().send(&message)?;
    Ok(())
}

fn post(hook: &Webhook, what: &Announcement) -> Result<(), AnnounceError> {
    let url = if hook.url.contains("{issue}") {
        let issue = what.issue.as_deref().ok_or(AnnounceError::NoIssue)?;
        hook.url.replace("{issue}", &percent_encode(issue))
    } else {
        hook.url.clone()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let mut request = agent.post(&url);
    for (name, value) in &hook.headers {
        request = request.header(name, value);
    }
    let body = match hook.template {
        WebhookTemplate::Report => what.report.clone(),
        WebhookTemplate::Comment => serde_json::json!({ "body": what.text }),
    };
    request.send_json(&body).map_err(Box::new)?;
    Ok(())
}

/// A URL for messages: its scheme and host only (webhook URLs carry
/// their secret in the path or the query, and credentials before the
/// host).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(a URL)".into();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}/...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_lose_their_credentials() {
        assert_eq!(
            redact_url("https://u:p@hooks.example/x/y"),
            "https://hooks.example/..."
        );
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T1/B2/SECRET?token=x"),
            "https://hooks.slack.com/..."
        );
        assert_eq!(percent_encode("PROJ-12"), "PROJ-12");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
