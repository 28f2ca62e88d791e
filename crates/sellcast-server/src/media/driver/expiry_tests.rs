//! Dead offers admitted together expire together, 10 s later. Freeing them is bounded per
//! turn, so live packets and chat lines waiting in the socket are read in between.

use std::time::{Duration, Instant};

use sellcast_room::{Identity, Role};
use str0m::media::{Direction, MediaKind};
use str0m::{Candidate, Rtc};

use super::fairness_tests::driver;
use super::FREES_PER_SWEEP;

/// A viewer's offer that will never do ICE.
fn dead_offer(port: u16) -> anyhow::Result<String> {
    let mut client = Rtc::builder().build(Instant::now());
    client.add_local_candidate(Candidate::host(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "udp")?);
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = change.apply().ok_or_else(|| anyhow::anyhow!("no offer"))?;
    Ok(offer.to_sdp_string())
}

#[tokio::test]
async fn expired_sessions_are_freed_a_bounded_number_per_turn_until_none_is_left() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut driver, _relays) = driver(dir.path()).await?;
    let dead = 3 * FREES_PER_SWEEP + 5;
    let admitted = Instant::now();
    for i in 0..dead {
        let identity = Identity { id: format!("v{i}"), name: "v".into(), role: Role::Viewer };
        driver.watch(admitted, ("show".into(), identity), &dead_offer(40_000 + i as u16)?, false).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    assert_eq!(driver.peers.len(), dead);

    // Past the connect deadline of every one of them.
    let mut now = admitted + driver.factory.timeouts.connect + Duration::from_secs(1);
    driver.next_sweep = driver.next_sweep.min(now);
    let mut freed_per_turn = Vec::new();
    while !driver.peers.is_empty() && freed_per_turn.len() < dead {
        let before = driver.peers.len();
        driver.handle_timeouts(now);
        freed_per_turn.push(before - driver.peers.len());
        now += Duration::from_millis(1);
    }
    assert!(driver.peers.is_empty(), "every expired session is freed: {freed_per_turn:?}");
    assert!(freed_per_turn.iter().all(|n| *n <= FREES_PER_SWEEP), "at most {FREES_PER_SWEEP} per turn: {freed_per_turn:?}");
    assert_eq!(freed_per_turn.len(), dead.div_ceil(FREES_PER_SWEEP), "the rest follow in the very next turns: {freed_per_turn:?}");
    assert_eq!(driver.stats.expired_unconnected, dead as u64);
    assert!(driver.rooms.is_empty(), "the room went with its last viewer");
    Ok(())
}
