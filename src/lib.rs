//! vonage-sessions: a server that creates Vonage Video sessions and mints client tokens with
//! server-held credentials, so that browsers and apps never hold a Vonage secret.

pub mod emulator;
pub mod video;
