//! This node's load for its heartbeat: peers and viewers as the media shards last posted
//! them, egress and CPU as rates over the time since the previous sample.

use std::time::Instant;

use super::node_record::NodeLoad;
use crate::media::status_board::MediaStats;

/// The process's user + system CPU time in clock ticks, from `/proc/self/stat` (fields 14 and
/// 15). Linux reports them in USER_HZ, which is 100 on every architecture it runs on.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    forwarded_bytes: u64,
    cpu_ticks: Option<u64>,
}

/// Turns counters into rates between two heartbeats.
#[derive(Debug, Default)]
pub struct LoadSampler {
    last: Option<Sample>,
}

impl LoadSampler {
    /// The load now; rates are zero on the first sample.
    pub fn sample(&mut self, stats: &MediaStats, at: Instant) -> NodeLoad {
        let now = Sample { at, forwarded_bytes: stats.forwarded_bytes, cpu_ticks: cpu_ticks() };
        let load = rates(self.last.as_ref(), &now, stats);
        self.last = Some(now);
        load
    }
}

fn rates(last: Option<&Sample>, now: &Sample, stats: &MediaStats) -> NodeLoad {
    let mut load = NodeLoad { peers: stats.peers, viewers: stats.viewers, egress_bps: 0, cpu: 0.0 };
    let Some(last) = last else { return load };
    let seconds = now.at.saturating_duration_since(last.at).as_secs_f64();
    if seconds <= 0.0 {
        return load;
    }
    let bytes = now.forwarded_bytes.saturating_sub(last.forwarded_bytes);
    load.egress_bps = (bytes as f64 * 8.0 / seconds) as u64;
    if let (Some(before), Some(after)) = (last.cpu_ticks, now.cpu_ticks) {
        load.cpu = after.saturating_sub(before) as f64 / TICKS_PER_SECOND / seconds;
    }
    load
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn egress_and_cpu_are_rates_over_the_interval() {
        let t0 = Instant::now();
        let last = Sample { at: t0, forwarded_bytes: 1_000, cpu_ticks: Some(50) };
        let now = Sample { at: t0 + Duration::from_secs(2), forwarded_bytes: 251_000, cpu_ticks: Some(150) };
        let stats = MediaStats { peers: 3, viewers: 2, ..MediaStats::default() };
        let load = rates(Some(&last), &now, &stats);
        assert_eq!((load.peers, load.viewers), (3, 2));
        assert_eq!(load.egress_bps, 1_000_000, "250 kB in 2 s is 1 Mbit/s");
        assert!((load.cpu - 0.5).abs() < 1e-9, "100 ticks in 2 s is half a core: {}", load.cpu);
    }

    #[test]
    fn the_first_sample_has_no_rates() {
        let now = Sample { at: Instant::now(), forwarded_bytes: 9, cpu_ticks: Some(9) };
        let load = rates(None, &now, &MediaStats::default());
        assert_eq!((load.egress_bps, load.cpu), (0, 0.0));
    }

    #[test]
    fn this_process_has_cpu_ticks() {
        assert!(cpu_ticks().is_some());
    }
}
