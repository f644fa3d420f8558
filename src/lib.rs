//! vonage-sessions: a server that creates Vonage Video sessions and mints client tokens with
//! server-held credentials, so that browsers and apps never hold a Vonage secret.
//!
//! `main.rs` is the command line; [`app::App`] wires the service; [`emulator`] is the
//! emulated Vonage Video API used by `dev`, the tests and front-end developers.

pub mod app;
pub mod auth;
pub mod callbacks;
pub mod config;
pub mod emulator;
pub(crate) mod error;
pub(crate) mod front;
pub(crate) mod lifecycle;
pub mod load;
pub(crate) mod metrics;
pub mod moderation;
pub(crate) mod redis_conn;
pub mod rooms;
pub mod routes;
pub(crate) mod server;
pub(crate) mod state;
pub mod telemetry;
pub mod video;
pub(crate) mod vocab;
