//! The C ABI of skype-dpi: a C face over the lean core (the crate with
//! `default-features = false`), built as `libskype_dpi.so` and
//! `libskype_dpi.a`; `include/skype_dpi.h` is generated from this file by
//! cbindgen (CI checks that the committed header is current).
//!
//! - Opaque handles: a `skype_dpi_classifier` is created, used and freed
//!   through these functions only.
//! - Every function returns a `skype_dpi_result` (negative: an error), and
//!   `skype_dpi_last_error` gives the message of the calling thread's last
//!   error, e.g. a bad model file named with what is wrong in it.
//! - No panic crosses the boundary: each call runs under `catch_unwind`; a
//!   panic becomes `SKYPE_DPI_ERR_PANIC` and leaves the handle poisoned
//!   (every later call on it says `SKYPE_DPI_ERR_POISONED`).
//! - Nothing is allocated per packet: a flow is allocated when it starts,
//!   an ended flow's record when it ends; events are read one at a time
//!   into the caller's struct.
//! - A handle is used by one thread at a time (create one per thread or
//!   NIC queue); handles are independent.

#![allow(clippy::missing_safety_doc, non_camel_case_types)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, CStr};
use std::net::IpAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use skype_dpi::classifier::{Classifier, Event, FlowRecord};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::endpoint::EndpointKey;
use skype_dpi::flow::{EndReason, FlowKey};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp, Transport};
use skype_dpi::tunnel::{Tunnel, TunnelKind};
use skype_dpi::verdict::{Kind, Label, Verdict, Via};

/// What a call returns: 0 or more is success, below 0 an error.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum skype_dpi_result {
    /// Done.
    SKYPE_DPI_OK = 0,
    /// `skype_dpi_next_event`: no event waits.
    SKYPE_DPI_NO_EVENT = 1,
    /// `skype_dpi_push`: the frame is not a TCP or UDP packet; it is
    /// counted by reason, and nothing else happened.
    SKYPE_DPI_SKIPPED = 2,
    /// A required pointer was null.
    SKYPE_DPI_ERR_NULL = -1,
    /// The model file could not be read or is not valid (see the message).
    SKYPE_DPI_ERR_MODEL = -2,
    /// An argument is out of range (see the message).
    SKYPE_DPI_ERR_ARGUMENT = -3,
    /// The library panicked; the handle is now poisoned (see the message).
    SKYPE_DPI_ERR_PANIC = -4,
    /// The handle panicked in an earlier call and cannot be used; free it.
    SKYPE_DPI_ERR_POISONED = -5,
}

use skype_dpi_result::*;

/// A flow's verdict.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum skype_dpi_label {
    /// Too little evidence either way.
    SKYPE_DPI_UNDECIDED = 0,
    /// Classic Skype.
    SKYPE_DPI_SKYPE = 1,
    /// The evidence contradicts Skype.
    SKYPE_DPI_NOT_SKYPE = 2,
}

/// Which kind of Skype traffic.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum skype_dpi_kind {
    /// Not Skype, or not decided.
    SKYPE_DPI_KIND_NONE = 0,
    /// End-to-end UDP voice or video.
    SKYPE_DPI_KIND_E2E = 1,
    /// End-to-out UDP (SkypeOut).
    SKYPE_DPI_KIND_E2O = 2,
    /// Skype over TCP.
    SKYPE_DPI_KIND_TCP = 3,
    /// Signalling, recognised at the client's endpoint.
    SKYPE_DPI_KIND_SIGNALLING = 4,
}

/// What an event is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum skype_dpi_event_kind {
    /// A flow's verdict while it is open: Skype as soon as it is reached, a
    /// revision when later evidence contradicts it, a final not Skype, or an
    /// endpoint's verdict for an undecided flow.
    SKYPE_DPI_EVENT_VERDICT = 1,
    /// A flow ended: its final record.
    SKYPE_DPI_EVENT_FLOW_ENDED = 2,
    /// A UDP endpoint (`key.src_ip`, `key.src_port`) was recognised as a
    /// Skype client.
    SKYPE_DPI_EVENT_ENDPOINT = 3,
    /// A flow that had ended was revised by an endpoint's verdict.
    SKYPE_DPI_EVENT_REVISED = 4,
}

/// A flow's 5-tuple, the initiator first. IPv4 addresses are in the first
/// 4 bytes of the 16 (network order), the rest zero.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct skype_dpi_flow_key {
    /// 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// Initiator address.
    pub src_ip: [u8; 16],
    /// Responder address.
    pub dst_ip: [u8; 16],
    /// Initiator port.
    pub src_port: u16,
    /// Responder port.
    pub dst_port: u16,
}

/// One event, as `skype_dpi_next_event` fills it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct skype_dpi_event {
    /// What it is.
    pub kind: skype_dpi_event_kind,
    /// The flow (for an endpoint event: the endpoint in `src_ip`,
    /// `src_port`).
    pub key: skype_dpi_flow_key,
    /// The verdict.
    pub label: skype_dpi_label,
    /// The Skype kind, when Skype.
    pub skype_kind: skype_dpi_kind,
    /// 0: none, 1: the flow's own evidence, 2: its endpoint's.
    pub via: u8,
    /// For a revision: 1 if a verdict was revised (`revised_from` holds
    /// it), else 0.
    pub revised: u8,
    /// The verdict it revised.
    pub revised_from: skype_dpi_label,
    /// How sure, 0 to 1.
    pub confidence: f64,
    /// The flow's packet count at the decision; -1 when not decided.
    pub decided_at_packet: i64,
    /// Seconds from the flow's first packet to the decision; negative when
    /// not decided.
    pub decided_after_seconds: f64,
    /// Flow records (ended, revised): packets of both directions.
    pub packets: u64,
    /// Flow records: payload bytes of both directions.
    pub payload_bytes: u64,
    /// Flow records: first and last packet, microseconds since the epoch.
    pub first_seen_micros: i64,
    /// See `first_seen_micros`.
    pub last_seen_micros: i64,
    /// Flow records: 1 idle, 2 FIN, 3 RST, 4 evicted, 5 end of capture; 0
    /// for other events.
    pub end_reason: u8,
    /// The tunnel that carried the flow (verdicts, flow records), as its
    /// first packet went through it.
    pub tunnel: skype_dpi_tunnel,
}

/// The tunnel that carried a flow.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct skype_dpi_tunnel {
    /// 0: none; 1 GTP-U, 2 GRE, 3 ERSPAN, 4 PPTP, 5 VXLAN, 6 Geneve, 7 IP
    /// in IP, 8 CAPWAP.
    pub kind: u8,
    /// 1 when `id` holds the tunnel's identifier (TEID, VNI, GRE key,
    /// ERSPAN session, PPTP call ID), else 0.
    pub has_id: u8,
    /// How many tunnels deep (1: one tunnel); 0 when none.
    pub depth: u8,
    /// 4 or 6 (the outer addresses); 0 when none.
    pub ip_version: u8,
    /// See `has_id`.
    pub id: u32,
    /// The outer source address (IPv4 in the first 4 bytes).
    pub outer_src_ip: [u8; 16],
    /// The outer destination address.
    pub outer_dst_ip: [u8; 16],
}

/// Bits of `skype_dpi_config.tunnels`: the tunnels the front end opens.
pub const SKYPE_DPI_TUNNEL_GTP_U: u32 = 1;
/// GRE, with ERSPAN and PPTP.
pub const SKYPE_DPI_TUNNEL_GRE: u32 = 2;
/// VXLAN.
pub const SKYPE_DPI_TUNNEL_VXLAN: u32 = 4;
/// Geneve.
pub const SKYPE_DPI_TUNNEL_GENEVE: u32 = 8;
/// IPv4 and IPv6 in IPv4 and IPv6.
pub const SKYPE_DPI_TUNNEL_IP_IN_IP: u32 = 16;
/// CAPWAP data.
pub const SKYPE_DPI_TUNNEL_CAPWAP: u32 = 32;
/// Every tunnel (the default).
pub const SKYPE_DPI_TUNNEL_ALL: u32 = 63;

/// The flow-table settings of a classifier.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct skype_dpi_config {
    /// Most flows held at once (the longest idle is evicted beyond it).
    pub max_flows: u64,
    /// UDP idle timeout, seconds.
    pub udp_idle_timeout: f64,
    /// TCP idle timeout, seconds.
    pub tcp_idle_timeout: f64,
    /// Seconds a closed TCP connection still takes its late packets.
    pub tcp_close_linger: f64,
    /// The tunnels opened, so that the flows inside are classified: an OR
    /// of `SKYPE_DPI_TUNNEL_*` bits.
    pub tunnels: u32,
}

/// The default settings (2^20 flows; UDP 120 s, TCP 300 s, linger 10 s;
/// every tunnel opened).
#[no_mangle]
pub extern "C" fn skype_dpi_config_default() -> skype_dpi_config {
    let t = FlowTableConfig::default();
    skype_dpi_config {
        max_flows: t.max_flows as u64,
        udp_idle_timeout: t.udp_idle_timeout,
        tcp_idle_timeout: t.tcp_idle_timeout,
        tcp_close_linger: t.tcp_close_linger,
        tunnels: SKYPE_DPI_TUNNEL_ALL,
    }
}

/// An opaque classifier.
pub struct skype_dpi_classifier {
    classifier: Classifier,
    pending: VecDeque<Event>,
    poisoned: bool,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(message: impl Into<String>) {
    let message = message.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// Runs `f` with panics caught: a panic sets the message, poisons `handle`
/// (when given) and returns `SKYPE_DPI_ERR_PANIC`.
fn guarded(
    handle: Option<&mut skype_dpi_classifier>,
    f: impl FnOnce(Option<&mut skype_dpi_classifier>) -> skype_dpi_result,
) -> skype_dpi_result {
    let mut handle = handle;
    if handle.as_ref().is_some_and(|h| h.poisoned) {
        set_error("the classifier panicked in an earlier call; free it and create a new one");
        return SKYPE_DPI_ERR_POISONED;
    }
    let result = catch_unwind(AssertUnwindSafe(|| f(handle.as_deref_mut())));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_string());
            set_error(format!("panic inside skype-dpi: {what}"));
            if let Some(h) = handle {
                h.poisoned = true;
            }
            SKYPE_DPI_ERR_PANIC
        }
    }
}

/// Creates a classifier. `model_path`: a model file (UTF-8 path), or NULL
/// for the embedded default model. `config`: NULL for the defaults. On
/// success `*out` holds the handle; free it with
/// `skype_dpi_classifier_free`.
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_classifier_new(
    model_path: *const c_char,
    config: *const skype_dpi_config,
    out: *mut *mut skype_dpi_classifier,
) -> skype_dpi_result {
    guarded(None, |_| {
        if out.is_null() {
            set_error("skype_dpi_classifier_new: `out` is NULL");
            return SKYPE_DPI_ERR_NULL;
        }
        let model = if model_path.is_null() {
            Model::default_model()
        } else {
            // SAFETY: the caller passes a NUL-terminated string.
            let path = unsafe { CStr::from_ptr(model_path) };
            let Ok(path) = path.to_str() else {
                set_error("skype_dpi_classifier_new: the model path is not UTF-8");
                return SKYPE_DPI_ERR_ARGUMENT;
            };
            Model::load(Path::new(path))
        };
        let model = match model {
            Ok(m) => m,
            Err(e) => {
                set_error(e.to_string());
                return SKYPE_DPI_ERR_MODEL;
            }
        };
        let mut table = FlowTableConfig::default();
        if !config.is_null() {
            // SAFETY: the caller passes a valid config or NULL.
            let c = unsafe { &*config };
            let timeouts = [c.udp_idle_timeout, c.tcp_idle_timeout, c.tcp_close_linger];
            if c.max_flows == 0 || timeouts.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
                set_error(
                    "skype_dpi_classifier_new: max_flows must be at least 1 and the timeouts finite numbers above 0",
                );
                return SKYPE_DPI_ERR_ARGUMENT;
            }
            if c.tunnels & !SKYPE_DPI_TUNNEL_ALL != 0 {
                set_error(
                    "skype_dpi_classifier_new: tunnels has bits that name no tunnel (use SKYPE_DPI_TUNNEL_* bits)",
                );
                return SKYPE_DPI_ERR_ARGUMENT;
            }
            let on = |bit: u32| c.tunnels & bit != 0;
            table.tunnels.gtp_u = on(SKYPE_DPI_TUNNEL_GTP_U);
            table.tunnels.gre = on(SKYPE_DPI_TUNNEL_GRE);
            table.tunnels.vxlan = on(SKYPE_DPI_TUNNEL_VXLAN);
            table.tunnels.geneve = on(SKYPE_DPI_TUNNEL_GENEVE);
            table.tunnels.ip_in_ip = on(SKYPE_DPI_TUNNEL_IP_IN_IP);
            table.tunnels.capwap = on(SKYPE_DPI_TUNNEL_CAPWAP);
            table.max_flows = usize::try_from(c.max_flows).unwrap_or(usize::MAX);
            table.udp_idle_timeout = c.udp_idle_timeout;
            table.tcp_idle_timeout = c.tcp_idle_timeout;
            table.tcp_close_linger = c.tcp_close_linger;
        }
        let handle = Box::new(skype_dpi_classifier {
            classifier: Classifier::with_table(model, table),
            pending: VecDeque::with_capacity(64),
            poisoned: false,
        });
        // SAFETY: `out` is not null (checked).
        unsafe { *out = Box::into_raw(handle) };
        SKYPE_DPI_OK
    })
}

/// Frees a classifier (NULL is ignored). Its open flows are dropped
/// without events; call `skype_dpi_finish` first to have their records.
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_classifier_free(c: *mut skype_dpi_classifier) {
    if !c.is_null() {
        // SAFETY: `c` came from `skype_dpi_classifier_new` and is freed once.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(c) })));
    }
}

fn label_of(l: Label) -> skype_dpi_label {
    match l {
        Label::Skype => skype_dpi_label::SKYPE_DPI_SKYPE,
        Label::NotSkype => skype_dpi_label::SKYPE_DPI_NOT_SKYPE,
        Label::Undecided => skype_dpi_label::SKYPE_DPI_UNDECIDED,
    }
}

fn kind_of(k: Option<Kind>) -> skype_dpi_kind {
    match k {
        Some(Kind::E2e) => skype_dpi_kind::SKYPE_DPI_KIND_E2E,
        Some(Kind::E2o) => skype_dpi_kind::SKYPE_DPI_KIND_E2O,
        Some(Kind::Tcp) => skype_dpi_kind::SKYPE_DPI_KIND_TCP,
        Some(Kind::Signalling) => skype_dpi_kind::SKYPE_DPI_KIND_SIGNALLING,
        _ => skype_dpi_kind::SKYPE_DPI_KIND_NONE,
    }
}

/// Pushes one captured frame: `data`, `len` captured bytes of a frame of
/// `orig_len` bytes on the wire (0: `len`), captured at `ts_micros`
/// (microseconds since the epoch), of pcap link type `link_type` (1
/// Ethernet, 101 raw IP, 113 Linux cooked, ...). When `label_out` is not
/// NULL it gets the verdict of the frame's flow as it stands after the
/// frame (what a firewall acts on). Returns `SKYPE_DPI_SKIPPED` for a frame
/// that is not a TCP/UDP packet.
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_push(
    c: *mut skype_dpi_classifier,
    data: *const u8,
    len: usize,
    orig_len: u32,
    ts_micros: i64,
    link_type: u32,
    label_out: *mut skype_dpi_label,
) -> skype_dpi_result {
    // SAFETY: `c` is a live handle or NULL.
    let handle = unsafe { c.as_mut() };
    if handle.is_none() || (data.is_null() && len > 0) {
        set_error("skype_dpi_push: NULL classifier or data");
        return SKYPE_DPI_ERR_NULL;
    }
    guarded(handle, |h| {
        let Some(h) = h else {
            return SKYPE_DPI_ERR_NULL;
        };
        let frame: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller passes `len` readable bytes at `data`.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        let raw = RawPacket {
            ts: Timestamp(ts_micros),
            link_type,
            data: frame,
            orig_len: if orig_len == 0 { len as u32 } else { orig_len },
        };
        let r = h.classifier.push(&raw);
        if !label_out.is_null() {
            // SAFETY: the caller passes a writable label or NULL.
            unsafe { *label_out = label_of(h.classifier.last_label()) };
        }
        match r {
            Ok(()) => SKYPE_DPI_OK,
            Err(_) => SKYPE_DPI_SKIPPED,
        }
    })
}

/// Ends the flows idle as of `now_micros` (`skype_dpi_push` also does it
/// once a second of capture time); their records become events.
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_expire(
    c: *mut skype_dpi_classifier,
    now_micros: i64,
) -> skype_dpi_result {
    // SAFETY: `c` is a live handle or NULL.
    let handle = unsafe { c.as_mut() };
    if handle.is_none() {
        set_error("skype_dpi_expire: NULL classifier");
        return SKYPE_DPI_ERR_NULL;
    }
    guarded(handle, |h| {
        if let Some(h) = h {
            h.classifier.expire(Timestamp(now_micros));
        }
        SKYPE_DPI_OK
    })
}

/// Ends every open flow (end of capture, shutdown); their records become
/// events.
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_finish(c: *mut skype_dpi_classifier) -> skype_dpi_result {
    // SAFETY: `c` is a live handle or NULL.
    let handle = unsafe { c.as_mut() };
    if handle.is_none() {
        set_error("skype_dpi_finish: NULL classifier");
        return SKYPE_DPI_ERR_NULL;
    }
    guarded(handle, |h| {
        if let Some(h) = h {
            h.classifier.finish_all();
        }
        SKYPE_DPI_OK
    })
}

fn addr(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

fn tunnel_of(t: Option<&Tunnel>) -> skype_dpi_tunnel {
    let Some(t) = t else {
        return skype_dpi_tunnel::default();
    };
    skype_dpi_tunnel {
        kind: match t.kind {
            TunnelKind::GtpU => 1,
            TunnelKind::Gre => 2,
            TunnelKind::Erspan => 3,
            TunnelKind::Pptp => 4,
            TunnelKind::Vxlan => 5,
            TunnelKind::Geneve => 6,
            TunnelKind::IpInIp => 7,
            TunnelKind::Capwap => 8,
            _ => 255,
        },
        has_id: u8::from(t.id.is_some()),
        depth: t.depth,
        ip_version: if t.outer_src.is_ipv6() { 6 } else { 4 },
        id: t.id.unwrap_or(0),
        outer_src_ip: addr(&t.outer_src),
        outer_dst_ip: addr(&t.outer_dst),
    }
}

fn key_of(k: &FlowKey) -> skype_dpi_flow_key {
    skype_dpi_flow_key {
        protocol: k.transport.ip_number(),
        ip_version: if k.src_ip.is_ipv6() { 6 } else { 4 },
        src_ip: addr(&k.src_ip),
        dst_ip: addr(&k.dst_ip),
        src_port: k.src_port,
        dst_port: k.dst_port,
    }
}

fn endpoint_key(e: &EndpointKey) -> skype_dpi_flow_key {
    let k = FlowKey {
        transport: Transport::Udp,
        src_ip: e.ip,
        src_port: e.port,
        dst_ip: e.ip,
        dst_port: 0,
    };
    let mut out = key_of(&k);
    out.dst_ip = [0; 16];
    out
}

fn event_of(kind: skype_dpi_event_kind, key: skype_dpi_flow_key, v: &Verdict) -> skype_dpi_event {
    skype_dpi_event {
        kind,
        key,
        label: label_of(v.label),
        skype_kind: kind_of(v.kind),
        via: match v.via {
            Some(Via::Flow) => 1,
            Some(Via::Endpoint) => 2,
            _ => 0,
        },
        revised: 0,
        revised_from: skype_dpi_label::SKYPE_DPI_UNDECIDED,
        confidence: v.confidence,
        decided_at_packet: v
            .decided_at_packet
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
        decided_after_seconds: v.decided_after_seconds.map_or(-1.0, f64::from),
        packets: 0,
        payload_bytes: 0,
        first_seen_micros: 0,
        last_seen_micros: 0,
        end_reason: 0,
        tunnel: skype_dpi_tunnel::default(),
    }
}

fn record_event(kind: skype_dpi_event_kind, r: &FlowRecord) -> skype_dpi_event {
    let mut e = event_of(kind, key_of(&r.key), &r.verdict);
    if let Some(from) = r.revised_from {
        e.revised = 1;
        e.revised_from = label_of(from);
    }
    e.packets = r.packets();
    e.payload_bytes = r.payload_bytes();
    e.first_seen_micros = r.first_seen.0;
    e.last_seen_micros = r.last_seen.0;
    e.tunnel = tunnel_of(r.tunnel.as_ref());
    e.end_reason = match r.end {
        EndReason::Idle => 1,
        EndReason::Fin => 2,
        EndReason::Rst => 3,
        EndReason::Evicted => 4,
        EndReason::CaptureEnd => 5,
        _ => 0,
    };
    e
}

/// Reads the next event into `*out`: `SKYPE_DPI_OK` with one, or
/// `SKYPE_DPI_NO_EVENT` when none waits. Call it after each push until it
/// says no event (or now and then: events wait in order).
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_next_event(
    c: *mut skype_dpi_classifier,
    out: *mut skype_dpi_event,
) -> skype_dpi_result {
    // SAFETY: `c` is a live handle or NULL.
    let handle = unsafe { c.as_mut() };
    if handle.is_none() || out.is_null() {
        set_error("skype_dpi_next_event: NULL classifier or event");
        return SKYPE_DPI_ERR_NULL;
    }
    guarded(handle, |h| {
        let Some(h) = h else {
            return SKYPE_DPI_ERR_NULL;
        };
        loop {
            if h.pending.is_empty() {
                if !h.classifier.has_events() {
                    return SKYPE_DPI_NO_EVENT;
                }
                let skype_dpi_classifier {
                    classifier,
                    pending,
                    ..
                } = h;
                pending.extend(classifier.drain_events());
            }
            let Some(e) = h.pending.pop_front() else {
                return SKYPE_DPI_NO_EVENT;
            };
            let event = match &e {
                Event::Verdict {
                    key,
                    verdict,
                    tunnel,
                    ..
                } => {
                    let mut e = event_of(
                        skype_dpi_event_kind::SKYPE_DPI_EVENT_VERDICT,
                        key_of(key),
                        verdict,
                    );
                    e.tunnel = tunnel_of(tunnel.as_ref());
                    e
                }
                Event::FlowEnded(r) => {
                    record_event(skype_dpi_event_kind::SKYPE_DPI_EVENT_FLOW_ENDED, r)
                }
                Event::Revised(r) => record_event(skype_dpi_event_kind::SKYPE_DPI_EVENT_REVISED, r),
                Event::EndpointRecognised(ep) => event_of(
                    skype_dpi_event_kind::SKYPE_DPI_EVENT_ENDPOINT,
                    endpoint_key(ep),
                    &Verdict::default(),
                ),
                // Events of later versions that this ABI does not carry.
                _ => continue,
            };
            // SAFETY: `out` is not null (checked) and writable.
            unsafe { *out = event };
            return SKYPE_DPI_OK;
        }
    })
}

/// Copies the calling thread's last error message, NUL-terminated and cut
/// to `len` bytes, into `buf` (when not NULL); returns the message's full
/// length in bytes (without the NUL).
#[no_mangle]
pub unsafe extern "C" fn skype_dpi_last_error(buf: *mut c_char, len: usize) -> usize {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        if !buf.is_null() && len > 0 {
            let n = e.len().min(len - 1);
            // SAFETY: the caller passes `len` writable bytes at `buf`.
            unsafe {
                std::ptr::copy_nonoverlapping(e.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        e.len()
    })
}

/// The name of a result code, e.g. "SKYPE_DPI_ERR_MODEL" (a static string).
#[no_mangle]
pub extern "C" fn skype_dpi_result_name(r: skype_dpi_result) -> *const c_char {
    let s: &'static CStr = match r {
        SKYPE_DPI_OK => c"SKYPE_DPI_OK",
        SKYPE_DPI_NO_EVENT => c"SKYPE_DPI_NO_EVENT",
        SKYPE_DPI_SKIPPED => c"SKYPE_DPI_SKIPPED",
        SKYPE_DPI_ERR_NULL => c"SKYPE_DPI_ERR_NULL",
        SKYPE_DPI_ERR_MODEL => c"SKYPE_DPI_ERR_MODEL",
        SKYPE_DPI_ERR_ARGUMENT => c"SKYPE_DPI_ERR_ARGUMENT",
        SKYPE_DPI_ERR_PANIC => c"SKYPE_DPI_ERR_PANIC",
        SKYPE_DPI_ERR_POISONED => c"SKYPE_DPI_ERR_POISONED",
    };
    s.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_model_is_an_error_with_its_message() {
        let mut c: *mut skype_dpi_classifier = std::ptr::null_mut();
        let r = unsafe {
            skype_dpi_classifier_new(
                c"/nonexistent/model.json".as_ptr(),
                std::ptr::null(),
                &mut c,
            )
        };
        assert_eq!(r, SKYPE_DPI_ERR_MODEL);
        assert!(c.is_null());
        let mut buf = [0 as c_char; 256];
        let n = unsafe { skype_dpi_last_error(buf.as_mut_ptr(), buf.len()) };
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        assert!(n > 0 && msg.contains("/nonexistent/model.json"), "{msg}");
        let r = unsafe {
            skype_dpi_push(
                std::ptr::null_mut(),
                [0u8].as_ptr(),
                1,
                0,
                0,
                1,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, SKYPE_DPI_ERR_NULL);
    }

    #[test]
    fn a_panic_poisons_the_handle_and_does_not_cross() {
        let mut c: *mut skype_dpi_classifier = std::ptr::null_mut();
        assert_eq!(
            unsafe { skype_dpi_classifier_new(std::ptr::null(), std::ptr::null(), &mut c) },
            SKYPE_DPI_OK
        );
        let h = unsafe { &mut *c };
        let r = guarded(Some(h), |_| panic!("boom"));
        assert_eq!(r, SKYPE_DPI_ERR_PANIC);
        let r = unsafe { skype_dpi_finish(c) };
        assert_eq!(r, SKYPE_DPI_ERR_POISONED);
        unsafe { skype_dpi_classifier_free(c) };
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut cfg = skype_dpi_config_default();
        cfg.max_flows = 0;
        let mut c: *mut skype_dpi_classifier = std::ptr::null_mut();
        let r = unsafe { skype_dpi_classifier_new(std::ptr::null(), &cfg, &mut c) };
        assert_eq!(r, SKYPE_DPI_ERR_ARGUMENT);
        cfg = skype_dpi_config_default();
        cfg.udp_idle_timeout = f64::NAN;
        let r = unsafe { skype_dpi_classifier_new(std::ptr::null(), &cfg, &mut c) };
        assert_eq!(r, SKYPE_DPI_ERR_ARGUMENT);
        cfg = skype_dpi_config_default();
        cfg.tunnels = SKYPE_DPI_TUNNEL_ALL + 1;
        let r = unsafe { skype_dpi_classifier_new(std::ptr::null(), &cfg, &mut c) };
        assert_eq!(r, SKYPE_DPI_ERR_ARGUMENT);
    }
}
