//! Everything about the Vonage Video API and nothing about serving HTTP.

pub mod session_id;
