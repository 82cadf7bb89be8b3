//! Servers a test starts for itself and stops when dropped: a private PostgreSQL (its own data
//! folder, port and TLS certificate), a PgBouncer in transaction mode in front of the tests'
//! PostgreSQL, and a Redis that speaks TLS only. Each listens on 127.0.0.1 on a free port.
//!
//! PostgreSQL and PgBouncer refuse to run as root, so they run as the `postgres` OS user (tests
//! run as root here, as CI does); Redis runs as the test's own user.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tls::{Scratch, ServerCert, TestCa};
use crate::wait_until;

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    crate::local_listener().1.port()
}

/// The uid and gid of the `postgres` OS user (from /etc/passwd).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .expect("an OS user `postgres` (installed with PostgreSQL)")
}

fn chown_to_postgres(path: &Path) {
    let (uid, gid) = postgres_user();
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {} failed", path.display());
}

/// A command run as the `postgres` OS user.
fn as_postgres(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let (uid, gid) = postgres_user();
    let mut command = Command::new(program);
    command.uid(uid).gid(gid).env_remove("PGDATA");
    command
}

/// The folder of PostgreSQL's server programs (the newest version installed).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed under /usr/lib/postgresql")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version with initdb").1
}

async fn wait_for_port(what: &str, port: u16, child: &mut Child, log: &Path) {
    wait_until(what, Duration::from_secs(30), || {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}) before listening:\n{log}");
        }
        let up = TcpStream::connect(("127.0.0.1", port)).is_ok();
        async move { up.then_some(()) }
    })
    .await;
}

/// Stops a child: SIGINT (PostgreSQL's fast shutdown, PgBouncer's safe one), then SIGKILL.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Who may connect to a [`PrivatePostgres`] over TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hba {
    /// `hostssl` rules only: plaintext connections are refused.
    TlsOnly,
    /// `host` rules: TLS or not.
    Any,
}

/// A PostgreSQL cluster of the test's own, with `ssl = on` and a certificate for `localhost`
/// signed by [`PrivatePostgres::ca`] (or `ssl = off`).
pub struct PrivatePostgres {
    pub port: u16,
    pub ca: TestCa,
    /// The CA certificate's file, for `sslrootcert=`.
    pub ca_file: PathBuf,
    child: Child,
    scratch: Scratch,
}

impl PrivatePostgres {
    /// Creates the cluster (`initdb`) and starts it. `tls`: `ssl = on` with a certificate for
    /// `localhost` only (so `127.0.0.1` is a host name the certificate does not match).
    pub async fn start(tls: bool, hba: Hba) -> PrivatePostgres {
        let scratch = Scratch::new("llmflow-pg");
        let ca = TestCa::new("llmflow test CA");
        let ca_file = scratch.write("ca.pem", &ca.cert_pem);
        let data = scratch.path().join("data");
        chown_to_postgres(scratch.path());
        let bin = postgres_bin();
        let out = as_postgres(bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut conf = format!(
            "port = {port}\nlisten_addresses = 'localhost'\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 50\nssl = {}\n",
            scratch.path().display(),
            if tls { "on" } else { "off" }
        );
        if tls {
            let ServerCert { cert_pem, key_pem } = ca.server_cert(&["localhost"]);
            std::fs::write(data.join("server.crt"), cert_pem).expect("write server.crt");
            std::fs::write(data.join("server.key"), key_pem).expect("write server.key");
            conf.push_str("ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let rule = match hba {
            Hba::TlsOnly => "hostssl",
            Hba::Any => "host",
        };
        let hba_text = format!(
            "local all all trust\n{rule} all all 127.0.0.1/32 trust\n{rule} all all ::1/128 trust\n"
        );
        let append = |name: &str, text: &str| {
            let path = data.join(name);
            let mut current = std::fs::read_to_string(&path).unwrap_or_default();
            current.push_str(text);
            std::fs::write(path, current).expect("write the cluster's configuration");
        };
        append("postgresql.conf", &conf);
        std::fs::write(data.join("pg_hba.conf"), hba_text).expect("write pg_hba.conf");
        chown_to_postgres(scratch.path());
        let key = data.join("server.key");
        if key.exists() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("chmod server.key");
        }
        let log = scratch.path().join("postgres.log");
        let log_file = std::fs::File::create(&log).expect("create the log");
        chown_to_postgres(&log);
        let mut child = as_postgres(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("start postgres");
        wait_for_port("the private PostgreSQL", port, &mut child, &log).await;
        // The port opens before recovery ends; connections are refused until this line.
        wait_until(
            "the private PostgreSQL to accept connections",
            Duration::from_secs(30),
            || {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                async move { log.contains("ready to accept connections").then_some(()) }
            },
        )
        .await;
        PrivatePostgres {
            port,
            ca,
            ca_file,
            child,
            scratch,
        }
    }

    /// `postgres://postgres@{host}:{port}/postgres?{query}`.
    pub fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    /// The scratch folder (for other files a test writes, e.g. another CA).
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// PgBouncer (`pool_mode = transaction`) in front of the tests' PostgreSQL: every database name
/// is passed through to the server of `TEST_DATABASE_URL`, as user `postgres`.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    _scratch: Scratch,
}

impl PgBouncer {
    /// Starts PgBouncer with at most `server_connections` server connections per database.
    pub async fn start(server_connections: u32) -> PgBouncer {
        let admin = url::Url::parse(&crate::database::admin_url()).expect("TEST_DATABASE_URL");
        let host = admin.host_str().unwrap_or("127.0.0.1").to_owned();
        let upstream_port = admin.port().unwrap_or(5432);
        let password = match admin.password() {
            Some(password) => format!(" password={password}"),
            None => String::new(),
        };
        let scratch = Scratch::new("llmflow-pgbouncer");
        let port = free_port();
        let dir = scratch.path().display().to_string();
        scratch.write("userlist.txt", "\"postgres\" \"\"\n");
        let ini = scratch.write(
            "pgbouncer.ini",
            &format!(
                "[databases]\n* = host={host} port={upstream_port} user=postgres{password}\n\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {dir}/userlist.txt\n\
                 pool_mode = transaction\ndefault_pool_size = {server_connections}\n\
                 max_client_conn = 1000\nignore_startup_parameters = extra_float_digits,options\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n"
            ),
        );
        chown_to_postgres(scratch.path());
        let log = scratch.path().join("pgbouncer.log");
        let mut child = as_postgres(which("pgbouncer"))
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer (Debian package `pgbouncer`)");
        wait_for_port("PgBouncer", port, &mut child, &log).await;
        PgBouncer {
            port,
            child,
            _scratch: scratch,
        }
    }

    /// The URL of `database` through PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The path of a program on PATH, or under the usual sbin folders (Debian installs some there).
fn which(program: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| panic!("`{program}` is not installed"))
}

/// A Redis that speaks TLS only (`--port 0 --tls-port`), with a certificate for `localhost` and
/// `127.0.0.1` signed by [`TlsRedis::ca_file`]'s CA, listening on 127.0.0.1 and 127.0.0.2 (an
/// address the certificate does not name).
pub struct TlsRedis {
    pub port: u16,
    pub ca_file: PathBuf,
    child: Child,
    _scratch: Scratch,
}

impl TlsRedis {
    pub async fn start() -> TlsRedis {
        let scratch = Scratch::new("llmflow-redis-tls");
        let ca = TestCa::new("llmflow test CA");
        let ca_file = scratch.write("ca.pem", &ca.cert_pem);
        let ServerCert { cert_pem, key_pem } = ca.server_cert(&["localhost", "127.0.0.1"]);
        let cert = scratch.write("redis.crt", &cert_pem);
        let key = scratch.write("redis.key", &key_pem);
        let port = free_port();
        let log = scratch.path().join("redis.log");
        let mut child = Command::new(which("redis-server"))
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                // Also on an address the certificate does not name, for host-mismatch tests.
                "127.0.0.2",
            ])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(scratch.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_port("the TLS Redis", port, &mut child, &log).await;
        TlsRedis {
            port,
            ca_file,
            child,
            _scratch: scratch,
        }
    }

    /// `rediss://{host}:{port}/0`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
