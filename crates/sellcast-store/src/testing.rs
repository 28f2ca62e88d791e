//! A throwaway PostgreSQL server for tests (feature `test-support`): the cluster is made by
//! `initdb` once per machine and PostgreSQL version (a template directory under the system's
//! temp dir), copied into a temp dir per server, and run by `postgres` itself as a child
//! process on a free loopback port, with a unix socket in that temp dir. PostgreSQL refuses to
//! run as root, so under root it runs as the unprivileged `postgres` user (Debian's package
//! creates it) and the temp dir is made theirs. Dropping the server stops it and removes its
//! files. `fsync` stays on: the durability the tests check is the real one.
//!
//! Missing binaries are an error that says what to install, never a silent skip.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Longest wait for a started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a stopped server to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
pub enum TestPgError {
    #[error(
        "PostgreSQL binaries not found (looked in $SELLCAST_PG_BIN, /usr/lib/postgresql/*/bin and PATH): \
         install Debian's `postgresql` package (`apt-get install -y postgresql`; scripts/test does)"
    )]
    Missing,
    #[error("PostgreSQL test server: {0}")]
    Failed(String),
}

fn failed(what: impl std::fmt::Display) -> TestPgError {
    TestPgError::Failed(what.to_string())
}

/// A PostgreSQL server owned by one test.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    owner: Option<(u32, u32)>,
    child: Option<Child>,
}

impl TestPostgres {
    /// Start a fresh server with an empty cluster.
    pub fn start() -> Result<TestPostgres, TestPgError> {
        let bin = bin_dir()?;
        let owner = run_as()?;
        let template = template(&bin, owner)?;
        let dir = unique_dir("sellcast-pg")?;
        copy_dir(&template, &dir.join("data"))?;
        chown(&dir, owner)?;
        let mut pg = TestPostgres { bin, dir, port: 0, owner, child: None };
        pg.start_server()?;
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?connect_timeout=5", self.port)
    }

    /// Create database `name` and return its URL.
    pub fn create_database(&self, name: &str) -> Result<String, TestPgError> {
        let sql = format!("CREATE DATABASE \"{name}\"");
        self.sql("postgres", move |c| c.batch_execute(&sql))?;
        Ok(self.url(name))
    }

    /// Run `f` on a new connection to database `db`. The blocking client runs a runtime of its
    /// own, which cannot start inside a test's: it runs on a thread of its own.
    pub fn sql<T: Send>(&self, db: &str, f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send) -> Result<T, TestPgError> {
        let url = self.url(db);
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(failed)?;
                f(&mut client).map_err(failed)
            })
            .join()
            .map_err(|_| failed("the SQL thread panicked"))?
        })
    }

    /// A new database with a name unique in this process (`t0`, `t1`, ...); its URL.
    pub fn fresh_database(&self) -> Result<String, TestPgError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.create_database(&format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Stop the server the way a crash would: an immediate shutdown (SIGQUIT), no checkpoint,
    /// every connection cut. The next start replays the WAL, as after a crash.
    pub fn stop(&mut self) -> Result<(), TestPgError> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg("-QUIT").arg(child.id().to_string()).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait().map_err(failed)?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(failed("the server did not stop in time; killed"))
    }

    /// Start it again on the same port and data (after [`TestPostgres::stop`]).
    pub fn restart(&mut self) -> Result<(), TestPgError> {
        self.stop()?;
        self.start_server()
    }

    fn start_server(&mut self) -> Result<(), TestPgError> {
        let mut last = String::new();
        for _ in 0..3 {
            if self.port == 0 || !last.is_empty() {
                self.port = free_port()?;
            }
            let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("log")).map_err(failed)?;
            let mut cmd = Command::new(self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(self.dir.join("data"))
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-k")
                .arg(&self.dir)
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "shared_buffers=16MB"])
                .args(["-c", "max_connections=40", "-c", "max_wal_size=256MB"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            if let Some((uid, gid)) = self.owner {
                cmd.uid(uid).gid(gid);
            }
            let child = cmd.spawn().map_err(|e| failed(format!("spawning postgres: {e}")))?;
            self.child = Some(child);
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    let _ = self.stop();
                }
            }
        }
        let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        Err(failed(format!("postgres did not start: {last}; log:\n{log}")))
    }

    /// Poll until the server accepts a connection (or exits, or the deadline passes).
    fn wait_ready(&mut self) -> Result<(), TestPgError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().map_err(failed)? {
                    self.child = None;
                    return Err(failed(format!("postgres exited: {status}")));
                }
            }
            match self.sql("postgres", |_| Ok(())) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(failed(format!("not ready: {e}"))),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `$SELLCAST_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
fn bin_dir() -> Result<PathBuf, TestPgError> {
    if let Some(dir) = std::env::var_os("SELLCAST_PG_BIN").map(PathBuf::from) {
        return if dir.join("postgres").exists() { Ok(dir) } else { Err(TestPgError::Missing) };
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("postgres").exists() && d.join("initdb").exists())
        .ok_or(TestPgError::Missing)
}

/// Under root: the `postgres` user's uid and gid (PostgreSQL will not run as root).
fn run_as() -> Result<Option<(u32, u32)>, TestPgError> {
    let me = Command::new("id").arg("-u").output().map_err(failed)?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(failed)?;
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .ok_or_else(|| failed("running as root and there is no `postgres` user to run PostgreSQL as (Debian's `postgresql` package creates it)"))?;
    let uid = entry[2].parse().map_err(failed)?;
    let gid = entry[3].parse().map_err(failed)?;
    Ok(Some((uid, gid)))
}

/// The initdb'd cluster every test server copies, made once per machine and version.
fn template(bin: &Path, owner: Option<(u32, u32)>) -> Result<PathBuf, TestPgError> {
    let version = bin.parent().and_then(Path::file_name).and_then(|v| v.to_str()).unwrap_or("pg").to_string();
    let uid = owner.map_or(0, |o| o.0);
    let path = std::env::temp_dir().join(format!("sellcast-pg-template-{version}-{uid}"));
    if path.join("PG_VERSION").exists() {
        return Ok(path);
    }
    let staging = unique_dir("sellcast-pg-initdb")?;
    chown(&staging, owner)?;
    let data = staging.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions"]);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().map_err(|e| failed(format!("running initdb: {e}")))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&staging);
        return Err(failed(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    // Another test may have made it meanwhile: either copy is good, the rename decides.
    if fs::rename(&data, &path).is_err() && !path.join("PG_VERSION").exists() {
        return Err(failed(format!("could not place the template at {}", path.display())));
    }
    let _ = fs::remove_dir_all(&staging);
    Ok(path)
}

fn unique_dir(prefix: &str) -> Result<PathBuf, TestPgError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(failed)?;
    Ok(dir)
}

/// `cp -a`: keeps the owner and the 0700 mode PostgreSQL insists on.
fn copy_dir(from: &Path, to: &Path) -> Result<(), TestPgError> {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().map_err(failed)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!("copying the template: {}", String::from_utf8_lossy(&out.stderr))))
    }
}

fn chown(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), TestPgError> {
    let Some((uid, gid)) = owner else { return Ok(()) };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(failed)
}

fn free_port() -> Result<u16, TestPgError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(failed)?;
    Ok(listener.local_addr().map_err(failed)?.port())
}
