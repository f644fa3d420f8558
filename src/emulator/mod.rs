//! The emulated Vonage Video API (work in progress).
