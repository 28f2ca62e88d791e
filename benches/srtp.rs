//! SRTP protect of one video packet with the AEAD ciphers the server negotiates (str0m's
//! provider, the code that runs per forwarded packet per viewer).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench_srtp(c: &mut Criterion) {
    let provider = str0m::crypto::from_feature_flags();
    let srtp = provider.srtp_provider;
    let payload = vec![0xabu8; 1188];
    let aad = [0x80u8; 12];
    let iv = [7u8; 12];
    let mut out = vec![0u8; payload.len() + 16];
    let mut group = c.benchmark_group("srtp_protect_1200B");
    group.throughput(Throughput::Bytes(1200));
    let mut gcm128 = srtp.aead_aes_128_gcm().create_cipher([3u8; 16], true);
    group.bench_function("aead_aes_128_gcm", |b| {
        b.iter(|| gcm128.encrypt(&iv, &aad, &payload, &mut out).map(|()| out[0]))
    });
    let mut gcm256 = srtp.aead_aes_256_gcm().create_cipher([5u8; 32], true);
    group.bench_function("aead_aes_256_gcm", |b| {
        b.iter(|| gcm256.encrypt(&iv, &aad, &payload, &mut out).map(|()| out[0]))
    });
    group.finish();
}

criterion_group!(benches, bench_srtp);
criterion_main!(benches);
