//! A bare axum hello-world: every request (any method, any path) reads its body and gets
//! `Hello, World!`. The reference for the tokens endpoint, which does no I/O either.
//!
//! Usage: `hello --listen 127.0.0.1:PORT`. Prints `hello listening on http://ADDR` once bound.

use std::net::SocketAddr;

use axum::Router;
use bytes::Bytes;

async fn hello(_body: Bytes) -> &'static str {
    "Hello, World!"
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8082".parse().unwrap();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--listen", Some(value)) => listen = value.parse().expect("--listen ADDR"),
            _ => panic!("usage: hello --listen ADDR"),
        }
    }
    let app = Router::new().fallback(hello);
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!(
        "hello listening on http://{}",
        listener.local_addr().unwrap()
    );
    axum::serve(listener, app).await.unwrap();
}
