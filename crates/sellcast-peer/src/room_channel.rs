//! The room's data channel as a viewer opens it (label `sellcast`, ordered, JSON text frames,
//! and a `hello` as soon as it opens, as the watch page does): send text, keep what arrives
//! for the test to read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::data_channel::RTCDataChannelInit;
use tokio::sync::watch;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::PeerConnection;

use crate::signalling::PeerError;

/// The label the server binds to the room.
const LABEL: &str = "sellcast";
/// The first frame on a channel: join the room with no position to resume from.
const HELLO: &str = r#"{"type":"hello"}"#;
/// Frames kept per viewer; later ones are counted, not stored (a flood must not eat memory).
const MAX_FRAMES: usize = 100_000;

#[derive(Default)]
struct Inbox {
    frames: Vec<(Instant, String)>,
    overflow: u64,
}

pub struct RoomChannel {
    channel: Arc<dyn DataChannel>,
    open: watch::Receiver<bool>,
    inbox: Arc<Mutex<Inbox>>,
}

impl RoomChannel {
    /// Create the channel (before the offer, so the offer carries `m=application`) and start
    /// reading it.
    /// `hello` replaces the plain `{"type":"hello"}` (to resume from a position).
    pub async fn create(pc: &dyn PeerConnection, hello: Option<String>) -> Result<RoomChannel, PeerError> {
        let init = RTCDataChannelInit { ordered: true, ..Default::default() };
        let channel = pc.create_data_channel(LABEL, Some(init)).await?;
        let (open_tx, open) = watch::channel(false);
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        tokio::spawn(read(channel.clone(), hello.unwrap_or_else(|| HELLO.to_string()), open_tx, inbox.clone()));
        Ok(RoomChannel { channel, open, inbox })
    }

    /// Wait until the channel is open, or fail after `limit`.
    pub async fn ready(&self, limit: Duration) -> Result<(), PeerError> {
        let mut open = self.open.clone();
        let wait = async {
            open.wait_for(|o| *o).await.map(|_| ()).map_err(|_| PeerError::WebRtc("data channel closed before opening".into()))
        };
        tokio::time::timeout(limit, wait).await.map_err(|_| PeerError::Timeout("data channel open"))?
    }

    pub async fn send(&self, text: &str) -> Result<(), PeerError> {
        self.channel.send_text(text).await?;
        Ok(())
    }

    /// Every text frame received so far, with its arrival time.
    pub fn frames(&self) -> Vec<(Instant, String)> {
        self.inbox.lock().map(|i| i.frames.clone()).unwrap_or_default()
    }

    /// Frames that arrived after `MAX_FRAMES` were kept.
    pub fn overflow(&self) -> u64 {
        self.inbox.lock().map(|i| i.overflow).unwrap_or(0)
    }
}

async fn read(channel: Arc<dyn DataChannel>, hello: String, open: watch::Sender<bool>, inbox: Arc<Mutex<Inbox>>) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnOpen => {
                // Before anyone can send on it, so the room sees the hello first.
                if let Err(e) = channel.send_text(&hello).await {
                    tracing::warn!(error = %e, "hello on the room channel failed");
                }
                let _ = open.send(true);
            }
            DataChannelEvent::OnMessage(m) => {
                let text = String::from_utf8_lossy(&m.data).into_owned();
                if let Ok(mut i) = inbox.lock() {
                    if i.frames.len() < MAX_FRAMES {
                        i.frames.push((Instant::now(), text));
                    } else {
                        i.overflow += 1;
                    }
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}
