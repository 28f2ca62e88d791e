//! What a group of viewers got of the host's media in one measured window. The host's packet
//! counters read at the window's start and end say which packets count, so joins, warm-up and
//! packets still in flight at the end never do: one definition of loss and one-way latency
//! for the plain step and the cluster run alike.

use anyhow::Result;
use hdrhistogram::Histogram;
use sellcast_peer::Viewer;

/// The host's (video, audio) packet counters at one instant.
pub type SentMark = (u64, u64);

/// What the viewers got of the packets the host sent between two marks.
#[derive(Debug)]
pub struct ViewerWindow {
    pub viewers: usize,
    /// Packets the host sent in the window that reached a viewer, summed over the viewers.
    pub received: u64,
    /// Per viewer: the share of the window's packets it did not get, in %.
    pub loss_pct: Vec<f64>,
    /// One-way latency (host send to viewer receive) of every packet read since the viewers'
    /// last `reset`, in microseconds.
    pub latency_us: Histogram<u64>,
    /// WHEP POST to the first packet beginning a keyframe, in microseconds.
    pub first_frame_us: Histogram<u64>,
    /// Viewers whose first video packet began a keyframe.
    pub keyframe_first: usize,
}

impl ViewerWindow {
    /// Read `viewers`' stats for the window from `start` to `end` (the host's marks).
    pub fn collect<'a>(viewers: impl IntoIterator<Item = &'a Viewer>, start: SentMark, end: SentMark) -> Result<Self> {
        let mut window = Self {
            viewers: 0,
            received: 0,
            loss_pct: Vec::new(),
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            first_frame_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            keyframe_first: 0,
        };
        let expected = (end.0.saturating_sub(start.0) + end.1.saturating_sub(start.1)) as f64;
        for v in viewers {
            let s = v.stats();
            let got = s.video.counters.range(start.0..end.0).count() + s.audio.counters.range(start.1..end.1).count();
            window.viewers += 1;
            window.received += got as u64;
            window.loss_pct.push(100.0 * (1.0 - got as f64 / expected.max(1.0)));
            for us in s.video.latency_us.iter().chain(&s.audio.latency_us) {
                window.latency_us.record((*us).max(1))?;
            }
            if let Some(d) = s.first_keyframe_after {
                window.first_frame_us.record((d.as_micros() as u64).max(1))?;
            }
            window.keyframe_first += usize::from(s.first_video_is_keyframe == Some(true));
        }
        Ok(window)
    }

    pub fn loss_pct_mean(&self) -> f64 {
        self.loss_pct.iter().sum::<f64>() / self.loss_pct.len().max(1) as f64
    }

    pub fn loss_pct_worst(&self) -> f64 {
        self.loss_pct.iter().cloned().fold(0.0, f64::max)
    }

    /// One-way latency at quantile `q`, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1e3
    }
}
