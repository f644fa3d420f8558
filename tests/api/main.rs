//! Integration tests: the real service and the real emulator over real HTTP on loopback.

mod archives;
mod auth;
mod emulator;
mod emulator_archives;
mod emulator_connections;
mod errors;
mod fuzz;
mod health;
mod helpers;
mod moderation;
mod openapi;
mod process;
mod resilience;
mod rooms;
mod sessions;
mod tokens;
mod upstream;
