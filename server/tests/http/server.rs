//! `http::run` on a real socket: serves until the shutdown future resolves,
//! then stops.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http_common::Fixture;

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[actix_web::test]
async fn run_serves_on_the_listener_until_shutdown() {
    let f = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let shutdown = {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let server = actix_web::rt::spawn(keyshare_server::http::run(
        listener,
        f.state.clone(),
        shutdown,
    ));
    let answer = actix_web::rt::task::spawn_blocking(move || get(addr, "/healthz"))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");
    stop.store(true, Ordering::SeqCst);
    let result = actix_web::rt::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("server did not stop");
    result.unwrap().unwrap();
}
