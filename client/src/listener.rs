//! [`DeployListener`]: a dedicated connection that LISTENs for deploys.

use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use crate::protocol::{DEPLOY_CHANNEL, DeployEvent, package_channel};
use crate::{ClientError, server_version_num};

/// How long [`DeployListener`] waits between two attempts to reconnect.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Opens the listener's connections.
type Connect = Box<dyn FnMut() -> Result<Client, ClientError> + Send>;

/// What a [`DeployListener`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerEvent {
    /// A package version was deployed (its transaction committed).
    Deployed(DeployEvent),
    /// The listener's connection was lost and a new one is listening.
    /// Notifications sent in between were lost: reselect versions and drop
    /// caches. A different `server_version_num` means another server, or
    /// the same one upgraded: every cached OID is suspect.
    Reconnected {
        previous_server_version_num: i32,
        server_version_num: i32,
    },
}

impl ListenerEvent {
    /// True for a reconnection to a server whose version changed.
    pub fn server_changed(&self) -> bool {
        matches!(
            self,
            ListenerEvent::Reconnected { previous_server_version_num, server_version_num }
                if previous_server_version_num != server_version_num
        )
    }
}

/// A dedicated connection that LISTENs for deploys and yields them.
///
/// It listens on [`DEPLOY_CHANNEL`] (every package) or on the channels of
/// the packages given. Its connections come from the closure given to
/// [`DeployListener::new`], called again to reconnect; give them an
/// `application_name` such as `pgpm-listener` to tell them apart in
/// `pg_stat_activity`.
pub struct DeployListener {
    connect: Connect,
    channels: Vec<String>,
    client: Option<Client>,
    server_version_num: i32,
    /// When the last failed reconnection was attempted.
    last_attempt: Option<Instant>,
}

impl std::fmt::Debug for DeployListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeployListener")
            .field("channels", &self.channels)
            .field("connected", &self.client.is_some())
            .field("server_version_num", &self.server_version_num)
            .finish()
    }
}

impl DeployListener {
    /// Connects with `connect` and LISTENs: on the channels of `packages`,
    /// or on [`DEPLOY_CHANNEL`] when `packages` is empty. `connect` is
    /// called again whenever the connection is lost.
    pub fn new<E>(
        mut connect: impl FnMut() -> Result<Client, E> + Send + 'static,
        packages: &[&str],
    ) -> Result<DeployListener, ClientError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut connect: Connect =
            Box::new(move || connect().map_err(|e| ClientError::Connect(e.into())));
        let channels = if packages.is_empty() {
            vec![DEPLOY_CHANNEL.to_string()]
        } else {
            packages.iter().map(|p| package_channel(p)).collect()
        };
        let (client, server_version_num) = open(&mut connect, &channels)?;
        Ok(DeployListener {
            connect,
            channels,
            client: Some(client),
            server_version_num,
            last_attempt: None,
        })
    }

    /// The channels listened on.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// The `server_version_num` of the server the listener is connected to
    /// (the last one, while disconnected).
    pub fn server_version_num(&self) -> i32 {
        self.server_version_num
    }

    /// The next event, waiting up to `timeout`; `None` when the time is up.
    ///
    /// When the connection is lost, the call (and the following ones) try
    /// to reconnect, at most once per [`RECONNECT_DELAY`], and report
    /// [`ListenerEvent::Reconnected`] on success. A failed attempt returns
    /// its error; the listener stays usable and tries again on the next
    /// call. A payload that is not a deploy event returns
    /// [`ClientError::BadEvent`]; the listener stays usable.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<ListenerEvent>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            let Some(client) = self.client.as_mut() else {
                let retry_at = self
                    .last_attempt
                    .map_or(now, |at| (at + RECONNECT_DELAY).max(now));
                if retry_at > deadline {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                    return Ok(None);
                }
                std::thread::sleep(retry_at - now);
                self.last_attempt = Some(Instant::now());
                let (client, version) = open(&mut self.connect, &self.channels)?;
                self.last_attempt = None;
                self.client = Some(client);
                let previous = std::mem::replace(&mut self.server_version_num, version);
                return Ok(Some(ListenerEvent::Reconnected {
                    previous_server_version_num: previous,
                    server_version_num: version,
                }));
            };
            let remaining = deadline.saturating_duration_since(now);
            let got = client.notifications().timeout_iter(remaining).next();
            match got {
                Ok(Some(n)) => {
                    return DeployEvent::from_notification(&n)
                        .map(|e| Some(ListenerEvent::Deployed(e)));
                }
                Ok(None) if !client.is_closed() => return Ok(None),
                Err(e) if !client.is_closed() => {
                    return Err(ClientError::db("cannot wait for deploy notifications")(e));
                }
                // The connection is gone: reconnect in the next round.
                _ => self.client = None,
            }
        }
    }

    /// Events as they come, blocking; the iterator never ends. Errors are
    /// yielded and the iteration can go on (see [`DeployListener::next`]).
    pub fn events(&mut self) -> Events<'_> {
        Events { listener: self }
    }
}

/// The blocking iterator of [`DeployListener::events`].
#[derive(Debug)]
pub struct Events<'a> {
    listener: &'a mut DeployListener,
}

impl Iterator for Events<'_> {
    type Item = Result<ListenerEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.listener.next(Duration::from_secs(3600)) {
                Ok(None) => continue,
                Ok(Some(event)) => return Some(Ok(event)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Opens the listener's connection: LISTEN on each channel, and read the
/// server's version.
fn open(connect: &mut Connect, channels: &[String]) -> Result<(Client, i32), ClientError> {
    let mut client = connect()?;
    let listen: String = channels
        .iter()
        .map(|c| format!("LISTEN {};", quote_ident(c)))
        .collect();
    client
        .batch_execute(&listen)
        .map_err(ClientError::db("cannot LISTEN for deploys"))?;
    let version = server_version_num(&mut client)?;
    Ok((client, version))
}

/// Quotes a channel name as an identifier (embedded quotes doubled).
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
