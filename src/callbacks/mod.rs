//! Vonage's callbacks to the application server (see the repository's `docs/callbacks.md`):
//! the payload model ([`event`]), shared by the receiver that verifies them and the room
//! lifecycle that applies them.

pub mod event;
