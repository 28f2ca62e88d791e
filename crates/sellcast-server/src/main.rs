//! `sellcast`: the live-selling server binary.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "sellcast", version, about = "Live selling server: WebRTC SFU, chat and flash sales")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: HTTP (pages, WHIP, WHEP) and one UDP port for all media.
    Serve {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// IP the UDP media socket binds to.
        #[arg(long, default_value = "127.0.0.1")]
        udp_ip: IpAddr,
        /// The one UDP port carrying every peer's media (0 picks a free one).
        #[arg(long, default_value_t = 8443)]
        udp_port: u16,
        /// Address announced in ICE candidates (a public IP behind 1:1 NAT); defaults to --udp-ip.
        #[arg(long)]
        announce_ip: Option<IpAddr>,
        /// Directory with the pages.
        #[arg(long, default_value = "web")]
        web_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,str0m=warn,dimpl=warn,is=warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            http,
            udp_ip,
            udp_port,
            announce_ip,
            web_dir,
        } => {
            let config = sellcast_server::Config {
                http_addr: http,
                udp_addr: SocketAddr::new(udp_ip, udp_port),
                announce_ip,
                web_dir,
            };
            let server = sellcast_server::start(config).await?;
            let base = format!("http://{}", server.http_addr);
            println!("sellcast is live");
            println!("  host page:  {base}/host/demo");
            println!("  watch page: {base}/watch/demo");
            println!("  WHIP:       {base}/whip/<room>   WHEP: {base}/whep/<room>");
            println!("  media:      udp {}", server.udp_addr);
            tokio::signal::ctrl_c().await?;
            tracing::info!("Ctrl-C: shutting down");
            server.shutdown().await;
        }
    }
    Ok(())
}
