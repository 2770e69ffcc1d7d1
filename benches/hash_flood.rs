//! A crafted-collision flood against the flow table (issue 16). An attacker
//! who knew the flow hash's keys could pick 5-tuples that all hash alike
//! ([`colliding_keys`]): every new flow then walks one ever longer run of
//! the index, and the table's cost per packet grows with the flows held.
//! The keys are secret and random per table ([`FlowHasher::new`]), so the
//! attacker can only guess them; this benchmark times, per packet (each
//! flow opened, then found again):
//!
//! - `random_tuples`: ordinary distinct tuples, the table's own random keys;
//! - `crafted_vs_random_key`: tuples crafted under a guessed key, against a
//!   table with its own random keys (the attack as it can happen);
//! - `crafted_vs_guessed_key`: the same tuples against a table whose keys
//!   are the guessed ones (the attack had the key been known: what the
//!   secret keys prevent).
//!
//! `cargo bench --bench hash_flood`. The first two should cost the same; the
//! third grows with the number of flows.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use skype_dpi::config::FlowTableConfig;
use skype_dpi::flow::{colliding_keys, FlowHasher, FlowKey, FlowTable};
use skype_dpi::packet::{Packet, TcpFlags, Timestamp, Transport};

const GUESSED: [u64; 7] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
    0x4528_21E6_38D0_1377,
    0xBE54_66CF_34E9_0C6C,
    0xC0AC_29B7_C97C_50DD,
];

fn packet(k: &FlowKey, i: usize) -> Packet<'static> {
    Packet {
        ts: Timestamp(1_700_000_000_000_000 + i as i64),
        src_ip: k.src_ip,
        dst_ip: k.dst_ip,
        src_port: k.src_port,
        dst_port: k.dst_port,
        transport: k.transport,
        payload: &[],
        payload_len: 40,
        tcp_flags: TcpFlags::default(),
        random_head: None,
        tunnel: None,
    }
}

/// Ordinary distinct tuples: IPv6 hosts counting up, as a scan would.
fn ordinary(n: u64) -> Vec<FlowKey> {
    (0..n)
        .map(|i| FlowKey {
            transport: Transport::Udp,
            src_ip: std::net::IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(i)).into()),
            src_port: 40000,
            dst_ip: std::net::IpAddr::V6((0x2001_0db8_0001_u128 << 80 | u128::from(i)).into()),
            dst_port: 3478,
        })
        .collect()
}

/// Opens every flow, then finds each again: two packets a flow.
fn run(packets: &[Packet<'_>], hasher: FlowHasher) -> usize {
    let mut table = FlowTable::with_hasher(FlowTableConfig::default(), hasher);
    let mut ended = 0usize;
    for _ in 0..2 {
        for p in packets {
            let u = table.update(p, || 0u32, &mut |_| ended += 1);
            *u.state += 1;
        }
    }
    table.len() + ended
}

fn flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash_flood");
    g.sample_size(10);
    for n in [1024u64, 4096, 16384] {
        let crafted: Vec<Packet<'static>> = colliding_keys(&GUESSED, n)
            .iter()
            .enumerate()
            .map(|(i, k)| packet(k, i))
            .collect();
        let plain: Vec<Packet<'static>> = ordinary(n)
            .iter()
            .enumerate()
            .map(|(i, k)| packet(k, i))
            .collect();
        g.throughput(Throughput::Elements(2 * n));
        g.bench_with_input(BenchmarkId::new("random_tuples", n), &plain, |b, p| {
            b.iter(|| black_box(run(p, FlowHasher::new())))
        });
        g.bench_with_input(
            BenchmarkId::new("crafted_vs_random_key", n),
            &crafted,
            |b, p| b.iter(|| black_box(run(p, FlowHasher::new()))),
        );
        g.bench_with_input(
            BenchmarkId::new("crafted_vs_guessed_key", n),
            &crafted,
            |b, p| b.iter(|| black_box(run(p, FlowHasher::with_keys(GUESSED)))),
        );
    }
    g.finish();
}

criterion_group!(benches, flood);
criterion_main!(benches);
