//! HTTP for the tests: a server that accepts every request with one status.
//!
//! In: a status line. Out: its bound address. State: the server task.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use super::*;

/// A local HTTP server that reads each request and answers with `status` (e.g. `"204 No Content"`).
pub async fn accept_all(status: &'static str) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            if quench::lab::stub::read_request(&mut s).await.is_some() {
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        }
    });
    addr
}
