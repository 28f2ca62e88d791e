//! DTLS with the certificates third-party stacks present. GStreamer (and other OpenSSL-based
//! stacks) authenticate with an RSA-2048 certificate; browsers and webrtc-rs with ECDSA. A
//! webrtc-rs publisher with an RSA certificate goes live and a viewer receives its video.
//!
//! The RSA key is made by the `openssl` command line tool at test time (Debian `openssl`).

mod support;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use sellcast_peer::{rsa_certificate, PublishOptions, Publisher, Viewer};
use support::{bounded, server, until};

fn rsa_key_pkcs8_der(dir: &std::path::Path) -> Result<Vec<u8>> {
    let (pem, der) = (dir.join("rsa.pem"), dir.join("rsa.der"));
    let openssl = |args: &[&str]| -> Result<()> {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .context("running the openssl command line tool (apt-get install openssl)")?;
        if !status.success() {
            bail!("openssl {args:?} failed: {status}");
        }
        Ok(())
    };
    let (pem_s, der_s) = (pem.to_string_lossy(), der.to_string_lossy());
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &pem_s])?;
    openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", &pem_s, "-outform", "DER", "-out", &der_s])?;
    Ok(std::fs::read(der)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_with_an_rsa_certificate_goes_live() -> Result<()> {
    let (server, dir) = server(1).await?;
    let certificate = rsa_certificate(&rsa_key_pkcs8_der(dir.path())?)?;
    let base = format!("http://{}", server.http_addr);
    let test = async {
        let options = PublishOptions { certificate: Some(certificate), connect_timeout: Duration::from_secs(10), ..PublishOptions::default() };
        let publisher = Publisher::connect(&base, "rsa", options).await.context("DTLS with an RSA client certificate")?;
        let viewer = Viewer::connect(&base, "rsa", None).await?;
        until(Duration::from_secs(15), "the viewer receives the RSA publisher's video", || {
            viewer.inspect(|s| s.video.packets > 30)
        })
        .await?;
        viewer.close().await;
        publisher.close().await;
        anyhow::Ok(())
    };
    let result = bounded(Duration::from_secs(60), test).await;
    server.shutdown().await;
    result
}
