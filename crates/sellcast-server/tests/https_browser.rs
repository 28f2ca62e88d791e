//! HTTPS end to end, as a public server runs it: the real binary serves the pages, the API, WHIP
//! and WHEP over TLS on a non-loopback address inside a private network namespace, with a
//! certificate from a test CA made here; Debian's Chromium trusts that CA through an NSS
//! database (certutil) and nothing else. The scenario is `tests/browser/https.mjs`; this test
//! makes the certificates, runs it and checks what it saw, including its two controls (a
//! browser without the CA is refused; plain HTTP on the same address gives no camera) and a
//! drain on SIGTERM that the pages ride out.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// The server's address inside the namespace (a veth there; never routed out).
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// A test CA, and a server certificate it signed for `ip`: `ca.pem`, `cert.pem`, `key.pem`.
fn certificates(dir: &Path, ip: IpAddr) -> Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "sellcast test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.distinguished_name.push(DnType::CommonName, ip.to_string());
    leaf.subject_alt_names = vec![SanType::IpAddress(ip)];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &ca)?;

    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    Ok(())
}

async fn prerequisites(dir: &Path) -> Result<()> {
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir).status().await?;
        if !status.success() {
            bail!("npm ci failed in {}", dir.display());
        }
    }
    if !Path::new("/usr/bin/chromium").exists() && std::env::var_os("CHROMIUM").is_none() {
        bail!("Chromium is missing: apt-get install chromium (scripts/test does)");
    }
    if Command::new("certutil").arg("-H").output().await.is_err() {
        bail!("certutil is missing: apt-get install libnss3-tools (scripts/test does)");
    }
    Ok(())
}

#[tokio::test]
async fn a_host_page_over_https_goes_live_and_a_viewer_plays() -> Result<()> {
    let dir = browser_dir();
    prerequisites(&dir).await?;
    let tls = tempfile::tempdir()?;
    certificates(tls.path(), IpAddr::V4(ADDR))?;

    let mut child = Command::new("sh")
        .arg(dir.join("https.sh"))
        .env("SELLCAST_BIN", env!("CARGO_BIN_EXE_sellcast"))
        .env("SELLCAST_TEST_ADDR", ADDR.to_string())
        .env("SELLCAST_HTTPS_PORT", "18443")
        .env("SELLCAST_TLS_DIR", tls.path())
        .env("NODE_EXTRA_CA_CERTS", tls.path().join("ca.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running tests/browser/https.sh (needs unshare and ip: util-linux, iproute2)")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut result: Option<Value> = None;
    let read = async {
        while let Some(line) = lines.next_line().await? {
            println!("{line}");
            if let Some(json) = line.strip_prefix("RESULT ") {
                result = Some(serde_json::from_str(json)?);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(200), read).await.context("the HTTPS scenario timed out")??;
    let status = child.wait().await?;
    if !status.success() {
        bail!("the HTTPS scenario failed ({status}); see its output above");
    }
    let r = result.context("the scenario printed no RESULT line")?;

    assert_eq!(r["host"]["protocol"], "https:", "{r}");
    assert_eq!(r["host"]["secure"], true, "the host page is a secure context: {r}");
    assert_eq!(r["host"]["camera_api"], true, "{r}");
    assert_eq!(r["host"]["live"], true, "{r}");
    assert_eq!(r["viewer"]["protocol"], "https:", "{r}");
    assert!(r["viewer"]["frames"].as_u64().unwrap_or(0) > 10, "the viewer decoded video: {r}");

    // Controls: the trust comes from the CA, and the secure context from HTTPS.
    assert_eq!(r["untrusted"]["loaded"], false, "a browser without the CA must refuse the page: {r}");
    assert!(r["untrusted"]["error"].as_str().is_some_and(|e| e.contains("ERR_CERT_AUTHORITY_INVALID")), "{r}");
    assert_eq!(r["plain_http"]["secure"], false, "plain HTTP off loopback is not a secure context: {r}");
    assert_eq!(r["plain_http"]["camera_api"], false, "{r}");

    // SIGTERM: both pages were told to move, the server exited 0, the pages came back by themselves.
    assert_eq!(r["drain"]["moving"]["host"], true, "{r}");
    assert_eq!(r["drain"]["moving"]["viewer"], true, "{r}");
    assert_eq!(r["drain"]["exit_code"], 0, "{r}");
    assert!(r["drain"]["exit_ms"].as_u64().is_some_and(|ms| ms < 10_000), "exited within the default --drain-seconds: {r}");
    assert_eq!(r["after_restart"]["host_live"], true, "{r}");
    assert!(r["after_restart"]["viewer_frames"].as_u64().unwrap_or(0) > 10, "{r}");
    println!("https: drain exit after {} ms", r["drain"]["exit_ms"]);
    Ok(())
}
