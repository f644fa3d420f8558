//! Integration tests: the real service and the real emulator over real HTTP on loopback.

mod archives;
mod auth;
mod emulator;
mod emulator_archives;
mod errors;
mod fuzz;
mod health;
mod helpers;
mod logging;
mod openapi;
mod process;
mod resilience;
mod rest_jwt;
mod rooms;
mod sessions;
mod tokens;
mod upstream;
