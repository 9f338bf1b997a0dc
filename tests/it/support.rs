//! Test support: the real `streamlake` binary started on a free port with a
//! fresh data directory, and clients for it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Options for one server process.
#[derive(Clone, Default)]
pub struct ServerOptions {
    pub data_dir: Option<PathBuf>,
    pub warehouse: Option<String>,
    pub s3_endpoint: Option<String>,
    pub user: Option<(String, String)>,
    pub env: Vec<(String, String)>,
    /// More flags, as (name without `--`, value): `barrier_interval`,
    /// `checkpoint_interval`, `snapshot_retain_last`, ...
    pub flags: Vec<(String, String)>,
    /// A TOML configuration file's text, passed with `--config`.
    pub config: Option<String>,
}

/// A running server; killed (SIGKILL) when dropped.
pub struct Server {
    pub port: u16,
    pub data_dir: PathBuf,
    options: ServerOptions,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(options: ServerOptions) -> Server {
        let (tmp, data_dir) = match &options.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::tempdir().unwrap();
                let d = t.path().to_path_buf();
                (Some(t), d)
            }
        };
        let mut server = Server {
            port: 0,
            data_dir,
            options,
            child: None,
            _tmp: tmp,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let port = free_port();
        let log = std::fs::File::create(self.data_dir.join(format!("server-{port}.log")))
            .or_else(|_| {
                std::fs::create_dir_all(&self.data_dir)?;
                std::fs::File::create(self.data_dir.join(format!("server-{port}.log")))
            })
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamlake"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(
                "STREAMLAKE_LOG",
                std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(w) = &self.options.warehouse {
            cmd.arg("--warehouse").arg(w);
        }
        if let Some(e) = &self.options.s3_endpoint {
            cmd.arg("--s3-endpoint").arg(e);
        }
        if let Some((u, p)) = &self.options.user {
            cmd.arg("--user").arg(u).arg("--password").arg(p);
        }
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        for (k, v) in &self.options.flags {
            cmd.arg(format!("--{}", k.replace('_', "-"))).arg(v);
        }
        if let Some(toml) = &self.options.config {
            let path = self.data_dir.join("streamlake.toml");
            std::fs::write(&path, toml).unwrap();
            cmd.arg("--config").arg(path);
        }
        self.child = Some(cmd.spawn().expect("spawn streamlake"));
        self.port = port;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "streamlake exited with {status} before listening; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far (all runs in this data dir).
    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.data_dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".log") {
                    out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    pub fn conn_string(&self) -> String {
        let user = self
            .options
            .user
            .as_ref()
            .map(|(u, p)| format!("user={u} password={p}"))
            .unwrap_or_else(|| "user=tester".into());
        format!("host=127.0.0.1 port={} dbname=dev {user}", self.port)
    }

    pub async fn client(&self) -> Client {
        let (client, conn) = tokio_postgres::connect(&self.conn_string(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// SIGKILL: a crash at an arbitrary instant.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same data directory (and a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill first");
        self.spawn();
    }

    pub fn catalog_db(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.data_dir.join("warehouse")
    }
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test shows what the server said last.
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("--- server log (last 60 lines) ---\n{tail}");
        }
        self.kill9();
    }
}

/// The Python of the test venv (psycopg, pyiceberg, moto); set by
/// scripts/test.sh. Tests that need it fail, not skip, without it.
pub fn python() -> PathBuf {
    let p = std::env::var("STREAMLAKE_PYTHON").expect(
        "STREAMLAKE_PYTHON is not set: run the tests with scripts/test.sh, which makes the venv",
    );
    PathBuf::from(p)
}

/// Runs a Python test script from tests/python with arguments; panics with
/// its output on failure, returns stdout on success.
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let mut cmd = Command::new(python());
    cmd.arg(&path).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// All rows of a simple query as text (NULL as "NULL").
pub async fn rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a failing statement.
pub async fn sqlstate(client: &Client, sql: &str) -> String {
    match client.simple_query(sql).await {
        Ok(_) => panic!("{sql}: expected an error"),
        Err(e) => e
            .as_db_error()
            .map(|d| d.code().code().to_string())
            .unwrap_or_else(|| panic!("{sql}: not a db error: {e}")),
    }
}

/// xorshift64*: small, seeded, reproducible (the differential suites).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}
