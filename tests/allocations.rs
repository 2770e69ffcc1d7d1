//! Steady state allocates nothing per packet: once its flows exist and are
//! decided, pushing more of their packets through the classifier makes no
//! heap allocation, plain or inside tunnels. A counting global allocator
//! checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use skype_dpi::classifier::Classifier;
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::synth::{Generator, SynthConfig};
use skype_dpi::tunnel::TunnelKind;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Plain frames, and (issue 17) frames inside tunnels. One test: the
/// allocation counter is the whole process's.
#[test]
fn steady_state_allocates_nothing_per_packet() {
    steady_state(None);
    for kind in [TunnelKind::GtpU, TunnelKind::Vxlan, TunnelKind::Gre] {
        steady_state(Some(kind));
    }
}

fn steady_state(tunnel: Option<TunnelKind>) {
    let cfg = SynthConfig {
        seed: 3,
        spread_seconds: 0.5,
        call_seconds: 60.0,
        bulk_seconds: 60.0,
        flows_per_profile: 2,
        signalling_clients: 0,
        tunnel,
        ..SynthConfig::default()
    };
    // Frames made before any measurement.
    let frames = skype_dpi::synth::frames(&mut Generator::new(&cfg), usize::MAX);
    let start = frames[0].0;
    let warm_until = start + 25_000_000;
    let stop_at = start + 28_000_000;
    let mut c = Classifier::new(Model::default_model().unwrap());
    let push = |c: &mut Classifier, ts: i64, f: &[u8]| {
        let raw = RawPacket {
            ts: Timestamp(ts),
            link_type: 1,
            data: f,
            orig_len: f.len() as u32,
        };
        let _ = c.push(&raw);
        c.drain_events().for_each(drop);
    };
    let mut i = 0;
    while i < frames.len() && frames[i].0 < warm_until {
        push(&mut c, frames[i].0, &frames[i].1);
        i += 1;
    }
    let flows = c.open_flows();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut measured = 0u64;
    while i < frames.len() && frames[i].0 < stop_at {
        push(&mut c, frames[i].0, &frames[i].1);
        measured += 1;
        i += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(measured > 10_000, "only {measured} packets measured");
    assert_eq!(
        c.open_flows(),
        flows,
        "no flow began or ended while measuring"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {measured} packets of {flows} open flows"
    );
    // The same in bursts.
    let stop_at = stop_at + 3_000_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut measured = 0u64;
    while i < frames.len() && frames[i].0 < stop_at {
        let end = (i + 32).min(frames.len());
        let mut raws = [RawPacket {
            ts: Timestamp(0),
            link_type: 1,
            data: &[],
            orig_len: 0,
        }; 32];
        for (r, f) in raws.iter_mut().zip(&frames[i..end]) {
            *r = RawPacket {
                ts: Timestamp(f.0),
                link_type: 1,
                data: &f.1,
                orig_len: f.1.len() as u32,
            };
        }
        c.push_burst(&raws[..end - i]);
        c.drain_events().for_each(drop);
        measured += (end - i) as u64;
        i = end;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(
        measured > 10_000,
        "only {measured} packets measured in bursts"
    );
    assert_eq!(c.open_flows(), flows);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {measured} packets pushed in bursts"
    );
}
