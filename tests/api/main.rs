//! Integration tests: the real service and the real emulator over real HTTP on loopback.

mod archives;
mod attacks;
mod auth;
mod details;
mod dev;
mod emulator;
mod emulator_archives;
mod emulator_connections;
mod errors;
mod fuzz;
mod health;
mod helpers;
mod logging;
mod moderation;
mod module_graph;
mod openapi;
mod process;
mod redis_topologies;
mod request_logs;
mod resilience;
mod rest_jwt;
mod rooms;
mod scaleout;
mod sessions;
mod tokens;
mod upstream;
