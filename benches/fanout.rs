//! Fan-out of one host packet to N viewers inside the forwarding core: rewrite and queue for
//! every viewer, then drain every queue, as the driver does. No sockets, no crypto: this is
//! the SFU's own per-packet work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sellcast_sfu::{Codec, Forwarder, ForwarderConfig, MediaPacket, TrackKind, ViewerId};

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("forwarder_fanout");
    for viewers in [10u64, 100, 500] {
        let t0 = Instant::now();
        let mut f = Forwarder::new(ForwarderConfig::default());
        f.handle_publisher_start(&[Codec::Opus, Codec::Vp8]);
        for v in 0..viewers {
            f.add_viewer(ViewerId(v));
            f.handle_viewer_ready(t0, ViewerId(v));
        }
        let payload: Arc<[u8]> = Arc::from(vec![0u8; 1100]);
        let mut key = vec![0x10u8, 0x00];
        key.resize(1100, 0);
        let keyframe: Arc<[u8]> = Arc::from(key);
        // Start every viewer on a keyframe so the measured packets are forwarded.
        let mut seq = 1u64;
        let first = MediaPacket { kind: TrackKind::Video, seq, timestamp: 0, marker: true, payload: keyframe, arrival: t0, layer: 0 };
        f.handle_rtp(t0, &first);
        for v in f.viewers_mut() {
            while v.pop_packet().is_some() {}
        }
        group.throughput(Throughput::Elements(viewers));
        group.bench_with_input(BenchmarkId::from_parameter(viewers), &viewers, |b, _| {
            b.iter(|| {
                seq += 1;
                let now = t0 + Duration::from_micros(seq * 300);
                let p = MediaPacket { kind: TrackKind::Video, seq, timestamp: (seq / 3) as u32 * 3000, marker: seq % 3 == 0, payload: payload.clone(), arrival: now, layer: 0 };
                f.handle_rtp(now, &p);
                let mut n = 0usize;
                for v in f.viewers_mut() {
                    while let Some(out) = v.pop_packet() {
                        n += out.payload.len();
                    }
                }
                std::hint::black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_fanout);
criterion_main!(benches);
