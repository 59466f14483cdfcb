//! Throwaway and sandbox PostgreSQL clusters from the server binaries on this machine.
//!
//! Used by the test suite (one cluster per test binary, a database per test)
//! and by `pgpm sandbox`. Binaries are found through `PG_BINDIR`, then
//! `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`.
//! PostgreSQL refuses to run as root, so when we are root `initdb` and the
//! server run as the `postgres` operating-system user, which then owns the
//! cluster directory.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::db::conninfo::ConnInfo;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries found (looked at PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql`"
    )]
    NoBinaries,
    #[error("PG_BINDIR is {}, which holds no pg_ctl", dir.display())]
    BadBindir { dir: PathBuf },
    #[error("running as root, but there is no `postgres` user to run the server as")]
    NoPostgresUser,
    #[error("{what} failed: {output}")]
    Command { what: String, output: String },
    #[error("cannot prepare {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    // Given, it must be right: falling back to other binaries would test,
    // or run, another version than the one asked for.
    if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        if dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
        return Err(ClusterError::BadBindir { dir });
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(ClusterError::NoBinaries)
}

/// Settings for a new cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The cluster's directory: `data/`, the socket and the log live inside.
    pub dir: PathBuf,
    /// The port (of TCP on 127.0.0.1, and in the socket's name); `None`
    /// picks a free one.
    pub port: Option<u16>,
    /// Listen on 127.0.0.1 as well as on the cluster's Unix socket. Without
    /// it only the socket is open, and only to the OS user running the
    /// server (mode 0700), so its trust authentication trusts nobody else.
    pub tcp: bool,
}

/// A local PostgreSQL cluster, started with `pg_ctl`.
///
/// Dropping a `Cluster` does not stop it: the sandbox outlives the command
/// that started it. Call [`Cluster::stop`] for throwaway clusters.
#[derive(Debug, Clone)]
pub struct Cluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Whether it listens on 127.0.0.1 (see [`ClusterOptions::tcp`]).
    tcp: bool,
    /// The OS user the server runs as, when we had to switch away from root.
    run_as: Option<(u32, u32)>,
}

/// The database superuser created by `initdb`.
pub const SUPERUSER: &str = "postgres";

impl Cluster {
    /// Creates the cluster if `dir` has none yet, and starts it unless it is
    /// running already. Idempotent, so the sandbox can reuse its cluster.
    pub fn start(opts: &ClusterOptions) -> Result<Cluster, ClusterError> {
        let bindir = find_bindir()?;
        let run_as = run_as()?;
        std::fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
        let dir = opts.dir.canonicalize().map_err(io_err(&opts.dir))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(io_err(&dir))?;
        }
        let port_file = dir.join("port");
        let port = match (opts.port, std::fs::read_to_string(&port_file)) {
            (Some(port), _) => port,
            (None, Ok(saved)) if saved.trim().parse::<u16>().is_ok() => {
                saved.trim().parse().expect("checked")
            }
            _ => free_port().map_err(io_err(&dir))?,
        };
        let cluster = Cluster {
            bindir,
            dir,
            port,
            tcp: opts.tcp,
            run_as,
        };
        if !cluster.data_dir().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        std::fs::write(&port_file, port.to_string()).map_err(io_err(&port_file))?;
        if !cluster.is_running() {
            cluster.pg_ctl_start()?;
        }
        Ok(cluster)
    }

    /// Makes a streaming hot standby of this running cluster in `dir` and
    /// starts it. With `pg_basebackup` (this server's major or a newer
    /// one: it backs up older servers), `pg_basebackup -R` copies the data;
    /// without, the data directory is copied between `pg_backup_start` and
    /// `pg_backup_stop` (the low-level backup API), for the server builds
    /// that ship no `pg_basebackup`. Either way the standby streams from a
    /// replication slot. For tests of what runs on replicas.
    pub fn start_standby(
        &self,
        dir: &Path,
        pg_basebackup: Option<&Path>,
    ) -> Result<Cluster, ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err(dir))?;
        }
        let dir = dir.canonicalize().map_err(io_err(dir))?;
        let standby = Cluster {
            bindir: self.bindir.clone(),
            port: free_port().map_err(io_err(&dir))?,
            dir,
            tcp: self.tcp,
            run_as: self.run_as,
        };
        let failed = |what: &str| {
            let what = what.to_string();
            move |e: postgres::Error| ClusterError::Command {
                what,
                output: e.to_string(),
            }
        };
        let mut admin = self
            .conninfo("postgres")
            .connect()
            .map_err(|e| ClusterError::Command {
                what: "connecting to the primary".into(),
                output: e.to_string(),
            })?;
        let slot = format!("pgpm_standby_{}", standby.port);
        admin
            .execute(
                "SELECT pg_create_physical_replication_slot($1, true)",
                &[&slot],
            )
            .map_err(failed("creating a replication slot"))?;
        match pg_basebackup {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.env("LC_ALL", "C").env_remove("PGDATA");
                if let Some((uid, gid)) = self.run_as {
                    cmd.uid(uid).gid(gid).current_dir(&standby.dir);
                }
                let out = cmd
                    .arg("-D")
                    .arg(standby.data_dir())
                    .args(["-R", "-X", "none", "-c", "fast", "-U", SUPERUSER, "-h"])
                    .arg(self.socket_dir())
                    .arg("-p")
                    .arg(self.port.to_string())
                    .output()
                    .map_err(io_err(program))?;
                check("pg_basebackup", out)?;
            }
            None => {
                let version: i32 = admin
                    .query_one("SELECT current_setting('server_version_num')::int", &[])
                    .map_err(failed("reading the server version"))?
                    .get(0);
                let (start, stop) = if version >= 150000 {
                    (
                        "SELECT pg_backup_start('pgpm standby', true)",
                        "SELECT labelfile FROM pg_backup_stop(false)",
                    )
                } else {
                    (
                        "SELECT pg_start_backup('pgpm standby', true, false)",
                        "SELECT labelfile FROM pg_stop_backup(false, false)",
                    )
                };
                admin
                    .execute(start, &[])
                    .map_err(failed("starting the backup"))?;
                copy_data_dir(&self.data_dir(), &standby.data_dir(), self.run_as)?;
                let label: String = admin
                    .query_one(stop, &[])
                    .map_err(failed("stopping the backup"))?
                    .get(0);
                let label_file = standby.data_dir().join("backup_label");
                std::fs::write(&label_file, label).map_err(io_err(&label_file))?;
                let signal = standby.data_dir().join("standby.signal");
                std::fs::write(&signal, "").map_err(io_err(&signal))?;
                if let Some((uid, gid)) = self.run_as {
                    for f in [&label_file, &signal] {
                        std::os::unix::fs::chown(f, Some(uid), Some(gid)).map_err(io_err(f))?;
                    }
                }
            }
        }
        // A primary_conninfo that -R wrote would carry options of
        // pg_basebackup's libpq (sslsni, ...) that an older server's libpq
        // refuses: the last setting of the file wins, so a plain one is
        // appended.
        let auto_conf = standby.data_dir().join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto_conf).map_err(io_err(&auto_conf))?;
        conf.push_str(&format!(
            "primary_conninfo = 'host=''{}'' port={} user={SUPERUSER}'\nprimary_slot_name = '{slot}'\n",
            self.socket_dir().display(),
            self.port
        ));
        std::fs::write(&auto_conf, conf).map_err(io_err(&auto_conf))?;
        let port_file = standby.dir.join("port");
        std::fs::write(&port_file, standby.port.to_string()).map_err(io_err(&port_file))?;
        standby.pg_ctl_start()?;
        Ok(standby)
    }

    /// The cluster in `dir`, if one was created there, without starting it.
    pub fn existing(dir: &Path) -> Result<Option<Cluster>, ClusterError> {
        let Ok(dir) = dir.canonicalize() else {
            return Ok(None);
        };
        let port = std::fs::read_to_string(dir.join("port"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let (Some(port), true) = (port, dir.join("data/PG_VERSION").exists()) else {
            return Ok(None);
        };
        let run_as = run_as()?;
        Ok(Some(Cluster {
            bindir: find_bindir()?,
            dir,
            port,
            tcp: false,
            run_as,
        }))
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let out = self
            .command("initdb")
            .arg("--no-sync")
            .arg("--auth=trust")
            .arg(format!("--username={SUPERUSER}"))
            .arg("--encoding=UTF8")
            .arg("--locale=C")
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .map_err(io_err(&self.bindir))?;
        check("initdb", out)
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let socket_dir = self.socket_dir();
        let listen = if self.tcp { "127.0.0.1" } else { "''" };
        let server_options = format!(
            "-c port={} -c listen_addresses={listen} -c unix_socket_directories='{}' \
             -c unix_socket_permissions=0700 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=200 -c shared_buffers=128MB",
            self.port,
            socket_dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("start")
            .arg("--wait")
            .arg("--timeout=60")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(server_options)
            .output()
            .map_err(io_err(&self.bindir))?;
        check("pg_ctl start", out).map_err(|err| match err {
            ClusterError::Command { what, output } => ClusterError::Command {
                what,
                output: format!("{output}\n{}", self.log_tail()),
            },
            other => other,
        })
    }

    /// Whether a server is running on this cluster's data directory.
    pub fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) -> Result<(), ClusterError> {
        if !self.is_running() {
            return Ok(());
        }
        let out = self
            .command("pg_ctl")
            .args(["stop", "--wait", "-m", "fast", "-D"])
            .arg(self.data_dir())
            .output()
            .map_err(io_err(&self.bindir))?;
        check("pg_ctl stop", out)
    }

    /// Stops the server and deletes the cluster's directory once process
    /// `pid` has exited, however it exits (even when killed). Throwaway
    /// clusters of tests and benchmarks use this so no server outlives them.
    pub fn remove_when_process_exits(&self, pid: u32) -> Result<(), ClusterError> {
        let script = r#"while [ -d "/proc/$1" ]; do sleep 0.2; done
"$2/pg_ctl" stop -m immediate -D "$3" >/dev/null 2>&1
rm -rf "$4""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("pgpm-cluster-reaper")
            .arg(pid.to_string())
            .arg(&self.bindir)
            .arg(self.data_dir())
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        // Its own process group, so a Ctrl-C aimed at the tests does not kill it first.
        cmd.process_group(0);
        cmd.spawn().map_err(io_err(&self.dir))?;
        Ok(())
    }

    /// Connection target for `dbname` as the superuser: over TCP when the
    /// cluster listens there, else over its Unix socket.
    pub fn conninfo(&self, dbname: &str) -> ConnInfo {
        let host = if self.tcp {
            "127.0.0.1".to_string()
        } else {
            self.socket_dir().to_string_lossy().into_owned()
        };
        ConnInfo::default()
            .with("host", host)
            .with("port", self.port.to_string())
            .with("user", SUPERUSER)
            .with("dbname", dbname)
            .with("sslmode", "disable")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        // The server must not inherit a locale or connection settings meant for clients.
        cmd.env("LC_ALL", "C").env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups when it switches uid.
            cmd.uid(uid).gid(gid).current_dir(&self.dir);
        }
        cmd
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Copies a running server's data directory for a low-level backup: what
/// vanishes meanwhile (temporary files) is skipped, and what a backup must
/// not hold (the pid file, WAL, replication slots) is left out; the copy
/// belongs to `owner`.
fn copy_data_dir(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), ClusterError> {
    use std::os::unix::fs::{DirBuilderExt, chown};
    let leave_out = |rel: &Path| {
        matches!(
            rel.to_str(),
            Some("postmaster.pid" | "postmaster.opts" | "backup_label" | "tablespace_map")
        ) || (rel.starts_with("pg_wal") || rel.starts_with("pg_replslot"))
            && rel.components().count() > 1
            && !rel.starts_with("pg_wal/archive_status")
    };
    for entry in walkdir::WalkDir::new(from).min_depth(0) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.io_error().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) => {
                continue;
            }
            Err(e) => return Err(io_err(from)(e.into())),
        };
        let rel = entry
            .path()
            .strip_prefix(from)
            .expect("under the data directory");
        if leave_out(rel) {
            continue;
        }
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&target)
                .map_err(io_err(&target))?;
        } else {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&target)(e)),
            }
        }
        if let Some((uid, gid)) = owner {
            chown(&target, Some(uid), Some(gid)).map_err(io_err(&target))?;
        }
    }
    Ok(())
}

/// The `postgres` user's uid and gid when we are root, who must not run the server.
fn run_as() -> Result<Option<(u32, u32)>, ClusterError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .ok_or(ClusterError::NoPostgresUser)?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}

/// Whether the user the server runs as can reach `dir`: every ancestor must
/// be searchable by it. A checkout under `/root` is not, for `postgres`.
pub fn reachable_by_server(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(Some((uid, gid))) = run_as() else {
        return true;
    };
    dir.ancestors().skip(1).all(|a| match std::fs::metadata(a) {
        Ok(m) => {
            let mode = m.mode();
            (m.uid() == uid && mode & 0o100 != 0)
                || (m.gid() == gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        }
        Err(_) => true,
    })
}

fn check(what: &str, out: Output) -> Result<(), ClusterError> {
    if out.status.success() {
        return Ok(());
    }
    Err(ClusterError::Command {
        what: what.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_string(),
    })
}

/// Asks the kernel for a free TCP port on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
