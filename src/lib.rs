//! skype-dpi: tells, flow by flow, whether traffic is classic Skype.
//!
//! The data path, top to bottom, one module per step: [`packet`] (decode a
//! frame) -> [`flow`] (the flow table) -> [`features`] (per-direction counts)
//! -> [`csc`], [`dft`], [`nbc`] (the three tests, sequential) ->
//! [`verdict`] (their combination) -> [`endpoint`] (a Skype client's
//! endpoint, for the flows too short to judge) -> [`classifier`] (the
//! streaming API a firewall links: packets in, events out). [`config`]
//! holds every number of the method and [`model`] the model file.
//!
//! Faces, each behind a cargo feature (all on by default; the core is
//! `default-features = false`): `capture` (modules `capture`, `analyze`, `yardstick`),
//! `output` (`output`, `community_id`), `parquet`
//! (`columnar`: records as Arrow columns and Parquet files), `train` (`train`, `labels`),
//! `report` (`evaluate`, `plots`), `synth` (`synth`). The C ABI is the
//! workspace member `skype-dpi-capi`.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "capture")]
pub mod analyze;
#[cfg(feature = "capture")]
pub mod capture;
pub mod classifier;
#[cfg(feature = "parquet")]
pub mod columnar;
#[cfg(feature = "output")]
pub mod community_id;
pub mod config;
pub mod csc;
pub mod dft;
pub mod endpoint;
#[cfg(feature = "report")]
pub mod evaluate;
pub mod features;
pub mod flow;
#[cfg(feature = "train")]
pub mod labels;
#[cfg(feature = "synth")]
pub mod linkmix;
pub mod model;
pub mod nbc;
#[cfg(feature = "output")]
pub mod output;
pub mod packet;
#[cfg(feature = "report")]
pub mod plots;
#[cfg(feature = "synth")]
pub mod synth;
#[cfg(feature = "train")]
pub mod train;
pub mod tunnel;
pub mod verdict;
#[doc(hidden)]
pub mod wire;
#[cfg(feature = "capture")]
pub mod yardstick;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
