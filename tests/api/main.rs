//! Integration tests: the real service and the real emulator over real HTTP on loopback.

mod emulator;
mod errors;
mod health;
mod helpers;
mod openapi;
mod process;
mod rooms;
mod sessions;
mod tokens;
mod upstream;
