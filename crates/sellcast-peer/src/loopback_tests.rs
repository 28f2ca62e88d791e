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

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::feedback_counter::FeedbackCounts;
use crate::peer::{self, PeerSetup, TrackCallback};
use crate::rtx_tagger::RtxTags;
use crate::publisher::{add_sendonly, negotiated_pt, track, PublishOptions, PublisherStats};
use crate::simulcast::{layer_sinks, layer_ssrcs, layered_track, send_layers, SimulcastLayer};
use crate::vp8::read_layer_mark;
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

/// Offer, answer and connect `sender` to `receiver` (both on loopback).
async fn call(sender: &mut peer::Built, receiver: &mut peer::Built) -> TestResult {
    peer::local_offer(sender.pc.as_ref()).await?;
    let offer = described(sender.pc.as_ref()).await?;
    receiver.pc.set_remote_description(RTCSessionDescription::offer(offer)?).await?;
    let answer = receiver.pc.create_answer(None).await?;
    receiver.pc.set_local_description(answer).await?;
    let answer = described(receiver.pc.as_ref()).await?;
    peer::apply_answer(sender.pc.as_ref(), answer).await?;
    peer::connected(&mut sender.state, Duration::from_secs(10)).await?;
    peer::connected(&mut receiver.state, Duration::from_secs(10)).await?;
    Ok(())
}

/// (rid the receiver bound an SSRC to, layer its payload was marked with)
type RidsSeen = BTreeSet<(String, Option<u8>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_host_sends_three_rid_layers_and_answers_a_layers_own_keyframe_request() -> TestResult {
    let layers = SimulcastLayer::three(600_000);
    let seed = 0x0bad_cafe;
    let seen: Arc<Mutex<RidsSeen>> = Arc::default();
    let h_ssrc = layer_ssrcs(seed, 1).0;
    let record = seen.clone();
    let on_track: TrackCallback = Arc::new(move |t: Arc<dyn TrackRemote>| {
        let record = record.clone();
        tokio::spawn(async move {
            let mut asked = false;
            while let Some(event) = t.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    let rid = t.rid(p.header.ssrc).await.unwrap_or_default();
                    if let Ok(mut s) = record.lock() {
                        s.insert((rid, read_layer_mark(&p.payload)));
                    }
                    if !asked {
                        // A keyframe request for the h layer alone.
                        let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: h_ssrc };
                        asked = t.write_rtcp(vec![Box::new(pli)]).await.is_ok();
                    }
                }
            }
        });
    });
    let stats = Arc::new(PublisherStats::default());
    let rtx_tags = Arc::new(RtxTags::default());
    let setup = PeerSetup {
        feedback: Some(stats.feedback.clone()),
        video_rtx: true,
        simulcast_ssrc_lines: true,
        rtx_tags: Some(rtx_tags.clone()),
        ..PeerSetup::default()
    };
    let mut sender = peer::build(setup).await?;
    let mut receiver = peer::build(PeerSetup { on_track: Some(on_track), video_rtx: true, ..PeerSetup::default() }).await?;
    let video = layered_track(&layers, seed);
    let (rtp_sender, transceiver) = add_sendonly(sender.pc.as_ref(), video.clone()).await?;
    call(&mut sender, &mut receiver).await?;
    let offer = sender.pc.local_description().await.map(|d| d.sdp).unwrap_or_default();
    assert!(offer.contains("a=simulcast:send q;h;f"), "the offer announces three layers:\n{offer}");
    let pt = negotiated_pt(rtp_sender.as_ref()).await?;
    let mid = transceiver.mid().await?.ok_or("no mid")?;
    let sinks = layer_sinks(&video, rtp_sender.as_ref(), (&mid, Some(&rtx_tags)), &layers, (seed, pt)).await?;
    let sending = tokio::spawn(send_layers(sinks, layers, PublishOptions::default(), stats.clone()));

    let want: BTreeSet<(String, Option<u8>)> = [("q", 0), ("h", 1), ("f", 2)].iter().map(|(r, l)| (r.to_string(), Some(*l))).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let asked = stats.feedback.keyframe_requests_for(h_ssrc);
        if got == want && asked >= 1 {
            break;
        }
        assert!(got.is_subset(&want), "a layer arrived under another rid: {got:?}");
        assert!(Instant::now() < deadline, "in 10 s: layers {got:?}, keyframe requests for h {asked}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stats.feedback.keyframe_requests_for(layer_ssrcs(seed, 0).0), 0, "the q layer was not asked");
    sending.abort();
    sender.pc.close().await?;
    receiver.pc.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_kbit_link_delivers_about_400_kbit_of_an_800_kbit_stream() -> TestResult {
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    let on_track: TrackCallback = Arc::new(move |t: Arc<dyn TrackRemote>| {
        let counted = counted.clone();
        tokio::spawn(async move {
            while let Some(event) = t.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    counted.fetch_add(p.payload.len() as u64 + 12, Ordering::Relaxed);
                }
            }
        });
    });
    let link = crate::impairment::Impairment::new();
    let mut sender = peer::build(PeerSetup::default()).await?;
    let mut receiver = peer::build(PeerSetup { on_track: Some(on_track), impairment: Some(link.clone()), ..PeerSetup::default() }).await?;
    let video = track(RtpCodecKind::Video, SSRC, None);
    let rtp_sender = sender.pc.add_track(video.clone() as Arc<dyn TrackLocal>).await?;
    call(&mut sender, &mut receiver).await?;
    let pt = rtp_sender.get_parameters().await?.rtp_parameters.codecs.first().map(|c| c.payload_type).ok_or("no codec")?;
    // Connected over an open link; from here on the link is 400 kbit/s with a 200 ms queue.
    link.set_link("400kbit".parse()?);
    let started = Instant::now();
    let mut seq = 0u16;
    // 100 packets of 1,000 bytes a second (800 kbit/s) for 3 s.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < Duration::from_secs(3) {
        tick.tick().await;
        let header = Header { version: 2, payload_type: pt, sequence_number: seq, timestamp: 900 * u32::from(seq), ssrc: SSRC, ..Default::default() };
        video.write_rtp(Packet { header, payload: Bytes::from(vec![0u8; 988]) }).await?;
        seq = seq.wrapping_add(1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the queue drains
    let bps = bytes.load(Ordering::Relaxed) as f64 * 8.0 / started.elapsed().as_secs_f64();
    println!("received {bps:.0} bit/s through a 400 kbit/s link; dropped by its queue: {}", link.dropped_by_queue());
    // SRTP and UDP overhead ride the link too, so a little under 400 kbit/s of payload arrives.
    assert!((300_000.0..=420_000.0).contains(&bps), "{bps} bit/s");
    assert!(link.dropped_by_queue() > 0, "what did not fit was dropped");
    sender.pc.close().await?;
    receiver.pc.close().await?;
    Ok(())
}
