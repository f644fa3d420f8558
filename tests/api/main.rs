//! Integration tests: the real service and the real emulator over real HTTP on loopback.
