//! The NATS server a cluster run's nodes share: Debian's `nats-server` with JetStream on and
//! its store in the run's temp directory, a child process killed on drop.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// `nats-server -js -sd <dir>/jetstream -a 127.0.0.1 -p <port>`, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    pub port: u16,
    pub pid: u32,
}

impl NatsServer {
    /// Start it with its store and log under `dir`, and wait until it accepts connections.
    pub fn start(dir: &Path, port: u16) -> Result<Self> {
        let log = std::fs::File::create(dir.join("nats.log"))?;
        let child = Command::new("nats-server")
            .args(["-js", "-sd"])
            .arg(dir.join("jetstream"))
            .args(["-p", &port.to_string(), "-a", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("nats-server is not installed: apt-get install nats-server"),
            Err(e) => return Err(e).context("starting nats-server"),
        };
        let pid = child.id();
        let mut nats = Self { child, port, pid };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nats.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default();
                bail!("nats-server exited ({status}) before accepting connections:\n{log}");
            }
            if Instant::now() > deadline {
                bail!("nats-server did not accept connections on port {port} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
