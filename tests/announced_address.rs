//! `--announce-ip`: the media socket bound to one address while ICE candidates name another, as
//! behind 1:1 NAT or in a container bound to 0.0.0.0. Here the socket is bound to 0.0.0.0 and the
//! server announces 127.0.0.1: packets arrive for 127.0.0.1, which is not the socket's own
//! address, and a publisher and a viewer must still connect and get media through.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use sellcast_peer::{PublishOptions, Publisher, Viewer};
use support::{bounded, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_to_any_address_takes_peers_on_the_announced_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = sellcast_server::Config {
        media_threads: 1,
        udp_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        announce_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ..sellcast_server::Config::local(dir.path().join("sellcast.db"))
    };
    let server = sellcast_server::start(config).await?;
    let base = format!("http://{}", server.http_addr);
    let test = async {
        let options = PublishOptions { connect_timeout: Duration::from_secs(10), ..PublishOptions::default() };
        let publisher = Publisher::connect(&base, "nat", options).await?;
        let viewer = Viewer::connect(&base, "nat", None).await?;
        until(Duration::from_secs(15), "the viewer receives video", || viewer.inspect(|s| s.video.packets > 30)).await?;
        viewer.close().await;
        publisher.close().await;
        anyhow::Ok(())
    };
    let result = bounded(Duration::from_secs(60), test).await;
    server.shutdown().await;
    result
}
