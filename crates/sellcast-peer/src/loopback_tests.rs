//! Two webrtc-rs peers built like the synthetic ones call each other on loopback, without the
//! server: proves the ICE settings alone connect over 127.0.0.1 (and work inside `unshare -n`),
//! and that keyframe requests and NACKs reach the sender's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use crate::feedback_counter::FeedbackCounts;
use crate::peer::{self, PeerSetup, TrackCallback};
use crate::publisher::track;
use crate::trailer::{now_us, Trailer};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SSRC: u32 = 0x1234_5678;

/// The local description once it carries a candidate (host candidates come from bound
/// sockets, so this is quick), bounded.
async fn described(pc: &dyn PeerConnection) -> Result<String, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(d) = pc.local_description().await {
            if d.sdp.contains("a=candidate") {
                return Ok(d.sdp);
            }
        }
        if Instant::now() > deadline {
            return Err("no local candidate within 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_connect_over_loopback_carry_rtp_and_count_a_keyframe_request() -> TestResult {
    let trailers = Arc::new(AtomicU64::new(0));
    let seen = trailers.clone();
    let on_track: TrackCallback = Arc::new(move |t: Arc<dyn TrackRemote>| {
        let seen = seen.clone();
        tokio::spawn(async move {
            // Ask for a keyframe once, as a viewer or the server would.
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: SSRC };
            let nack = TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc: SSRC,
                nacks: vec![NackPair { packet_id: 0, lost_packets: 0 }],
            };
            let _ = t.write_rtcp(vec![Box::new(pli), Box::new(nack)]).await;
            while let Some(event) = t.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    if Trailer::read(&p.payload).is_some() {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    });
    let feedback = Arc::new(FeedbackCounts::default());
    let mut sender = peer::build(PeerSetup { feedback: Some(feedback.clone()), ..PeerSetup::default() }).await?;
    let mut receiver = peer::build(PeerSetup { on_track: Some(on_track), ..PeerSetup::default() }).await?;
    let video = track(RtpCodecKind::Video, SSRC, None);
    let rtp_sender = sender.pc.add_track(video.clone() as Arc<dyn TrackLocal>).await?;

    peer::local_offer(sender.pc.as_ref()).await?;
    let offer = described(sender.pc.as_ref()).await?;
    assert!(offer.contains(" 127.0.0.1 "), "the offer's candidate is on loopback:\n{offer}");
    receiver.pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
    let answer = receiver.pc.create_answer(None).await?;
    receiver.pc.set_local_description(answer).await?;
    let answer = described(receiver.pc.as_ref()).await?;
    peer::apply_answer(sender.pc.as_ref(), answer).await?;
    peer::connected(&mut sender.state, Duration::from_secs(10)).await?;
    peer::connected(&mut receiver.state, Duration::from_secs(10)).await?;

    let pt = rtp_sender.get_parameters().await?.rtp_parameters.codecs.first().map(|c| c.payload_type).ok_or("no codec")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for seq in 0u16.. {
        if trailers.load(Ordering::Relaxed) >= 20 && feedback.keyframe_requests.load(Ordering::Relaxed) >= 1
            && feedback.nacks.load(Ordering::Relaxed) >= 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in 10 s the receiver got {} packets and the sender {} PLIs and {} NACKs",
            trailers.load(Ordering::Relaxed),
            feedback.keyframe_requests.load(Ordering::Relaxed),
            feedback.nacks.load(Ordering::Relaxed)
        );
        let mut payload = vec![0u8; 200];
        Trailer { counter: u64::from(seq), sent_us: now_us() }.write(&mut payload);
        let header =
            Header { version: 2, payload_type: pt, sequence_number: seq, timestamp: 90 * u32::from(seq), ssrc: SSRC, ..Default::default() };
        video.write_rtp(Packet { header, payload: Bytes::from(payload) }).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sender.pc.close().await?;
    receiver.pc.close().await?;
    Ok(())
}
