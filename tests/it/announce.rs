//! `deploy --announce`: an e-mail to a real SMTP server (Python's
//! aiosmtpd, with STARTTLS when the test cluster has its test CA) and
//! webhooks to a local HTTP listener.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{TestDb, output, pgpm, shop, target_fields, test_ca};

/// The PYTHONPATH under which `import aiosmtpd` works: the interpreter's
/// own, or a directory under target/ that pip installs it into once.
fn aiosmtpd_path() -> String {
    let imports = |path: &str| {
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .env("PYTHONPATH", path)
            .status()
            .is_ok_and(|s| s.success())
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-python");
    let dir = dir.to_str().unwrap().to_string();
    if imports("") || imports(&dir) {
        return dir;
    }
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "-q", "--target", &dir, "aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && imports(&dir),
        "the announce tests need Python's aiosmtpd: pip install aiosmtpd"
    );
    dir
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd listening on `port`, printing each message it gets (its
/// Debugging handler) to a file; with `tls`, STARTTLS is required.
struct Smtp {
    child: Child,
    log: PathBuf,
}

impl Smtp {
    fn start(dir: &Path, port: u16, tls: Option<&Path>) -> Smtp {
        let log = dir.join("smtp.log");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .env("PYTHONPATH", aiosmtpd_path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null());
        if let Some(certs) = tls {
            cmd.arg("--tlscert")
                .arg(certs.join("server.crt"))
                .arg("--tlskey")
                .arg(certs.join("server.key"));
        }
        let child = cmd.spawn().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, log }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request as the listener got it.
#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A local HTTP listener that answers 200 to every request and keeps them.
fn http_listener() -> (u16, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            keep.lock().unwrap().push(Request {
                line: line.trim_end().to_string(),
                headers,
                body: String::from_utf8(body).unwrap(),
            });
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// `[targets.shopdb]` for the test database.
fn target(db: &TestDb) -> String {
    format!("[targets.shopdb]\n{}", target_fields(db))
}

#[test]
fn a_deploy_is_announced_by_mail_and_webhooks_and_a_failed_announcement_undoes_nothing() {
    let db = TestDb::installed();
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let smtp_port = free_port();
    // STARTTLS with the test CA's certificate for localhost, when the
    // cluster has one; plain SMTP otherwise.
    let certs = test_ca().map(|ca| ca.parent().unwrap().to_path_buf());
    let smtp = Smtp::start(root, smtp_port, certs.as_deref());
    let (http_port, requests) = http_listener();
    let tls = match &certs {
        Some(dir) => format!(
            "tls = \"starttls\"\nca_file = \"{}\"\n",
            dir.join("ca.crt").display()
        ),
        None => "tls = \"none\"\n".into(),
    };
    std::fs::write(
        root.join("pgpm.toml"),
        format!(
            "default = \"shopdb\"\n{}\n[announce.email]\nserver = \"localhost\"\nport = {smtp_port}\n{tls}from = \"pgpm <deploy@example.com>\"\nto = [\"dba@example.com\", \"${{ONCALL}}\"]\n\n\
             [[announce.webhook]]\nurl = \"http://127.0.0.1:{http_port}/hook\"\n\n\
             [[announce.webhook]]\nurl = \"http://127.0.0.1:{http_port}/rest/api/2/issue/{{issue}}/comment\"\ntemplate = \"comment\"\nheaders = {{ Authorization = \"Bearer ${{HOOK_TOKEN}}\" }}\n",
            target(&db)
        ),
    )
    .unwrap();
    std::fs::write(
        root.join(".env"),
        "HOOK_TOKEN=t0ken\nONCALL=oncall@example.com\n",
    )
    .unwrap();
    shop(root, "1.0.0");
    let run = |args: &[&str]| {
        output(
            pgpm()
                .current_dir(root)
                .args(args)
                .env("HOME", root)
                .assert(),
        )
    };

    let (code, stdout, stderr) = run(&[
        "deploy",
        "shop-1.0.0",
        "--announce",
        "--issue-ref",
        "PROJ-7",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("announced by e-mail to dba@example.com, oncall@example.com"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .matches("announced by webhook http://127.0.0.1:")
            .count(),
        2,
        "{stderr}"
    );

    // The mail, as the SMTP server received it.
    let mail = smtp.received();
    assert!(
        mail.contains("Subject: pgpm: deployed shop 1.0.0 to shopdb"),
        "{mail}"
    );
    assert!(
        mail.contains("deployed shop 1.0.0 -> shop_1_0_0 (created)"),
        "{mail}"
    );
    assert!(mail.contains("issue: PROJ-7"), "{mail}");
    assert!(mail.contains("oncall@example.com"), "{mail}");

    // The report webhook got deploy's JSON report; the comment one a JIRA
    // comment at the URL, with its header.
    let got = requests.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let report = got
        .iter()
        .find(|r| r.line == "POST /hook HTTP/1.1")
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&report.body).unwrap();
    assert_eq!(json["issue_ref"], "PROJ-7");
    assert_eq!(json["targets"][0]["target"], "shopdb");
    let package = &json["targets"][0]["report"]["packages"][0];
    assert_eq!(package["schema"], "shop_1_0_0", "{json}");
    assert_eq!(package["outcome"], "created", "{json}");
    let comment = got
        .iter()
        .find(|r| r.line == "POST /rest/api/2/issue/PROJ-7/comment HTTP/1.1")
        .unwrap();
    assert!(
        comment
            .headers
            .contains(&("authorization".into(), "Bearer t0ken".into())),
        "{comment:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&comment.body).unwrap();
    assert!(
        body["body"]
            .as_str()
            .unwrap()
            .contains("deployed shop 1.0.0 -> shop_1_0_0"),
        "{body}"
    );

    // Up to date: nothing to announce, no hook runs.
    let (code, _, stderr) = run(&[
        "deploy",
        "shop-1.0.0",
        "--announce",
        "--issue-ref",
        "PROJ-7",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("nothing to announce"), "{stderr}");
    assert_eq!(requests.lock().unwrap().len(), 2);

    // The mail server gone: the announcement fails, the deploy stands.
    drop(smtp);
    shop(root, "1.1.0");
    let (code, stdout, stderr) = run(&[
        "deploy",
        "shop-1.1.0",
        "--announce",
        "--issue-ref",
        "PROJ-7",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: announcing by e-mail to dba@example.com, oncall@example.com failed (the deploy stands)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("announced by webhook").count(),
        2,
        "{stderr}"
    );
    let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(n, 2);

    // No [announce] hooks: refused before anything is deployed.
    std::fs::write(
        root.join("pgpm.toml"),
        format!("default = \"shopdb\"\n{}", target(&db)),
    )
    .unwrap();
    shop(root, "1.2.0");
    let (code, _, stderr) = run(&["deploy", "shop-1.2.0", "--announce"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no [announce] hooks"), "{stderr}");
    let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(n, 2);
}
