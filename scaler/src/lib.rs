//! # safecity-scaler
//!
//! The KEDA external (push) scaler of every safecity function:
//!
//! - **pending work** = ready + in-flight messages of the function's queue, so a
//!   function busy with unacked work is never reported idle ([`state`]);
//! - **push activation**: a tap queue on the events exchange pushes
//!   `StreamIsActive = true` within milliseconds of an event ([`tap`], [`activation`]);
//! - **drain-time targets**: backlog seconds instead of message counts ([`formula`]);
//! - **one broker connection** however many ScaledObjects ask ([`broker`]);
//! - every RPC answers from memory ([`service`]), with each trigger's metadata
//!   parsed once; triggers KEDA stopped asking about are pruned ([`registry`]).
//!
//! Start it with [`start`]; configuration comes from [`ScalerConfig`].

pub mod activation;
pub mod broker;
pub mod config;
pub mod error;
pub mod formula;
pub mod metadata;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod service;
pub mod state;
pub mod tap;
pub mod tls;

/// Code generated from `proto/externalscaler.proto`.
pub mod pb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, unused_qualifications)]
    tonic::include_proto!("externalscaler");
}

pub use config::ScalerConfig;
pub use error::ScalerError;
pub use server::{RunningScaler, StartError, start};
