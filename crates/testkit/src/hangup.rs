//! A server that reads each request's headers and then closes the connection without a
//! response, like a provider or proxy that drops the connection after the request was written.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Maximum bytes read from one connection before it is closed anyway.
const MAX_READ_BYTES: usize = 64 * 1024;

/// A running hang-up server, which stops when this is dropped.
#[derive(Debug)]
pub struct HangUpServer {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HangUpServer {
    /// Binds `127.0.0.1:0` and starts accepting connections.
    ///
    /// # Panics
    ///
    /// Panics when no local port can be bound.
    pub async fn start() -> HangUpServer {
        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await {
            Ok(listener) => listener,
            Err(error) => panic!("failed to bind the hang-up server to 127.0.0.1:0: {error}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => panic!("failed to read the address of the hang-up server: {error}"),
        };
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(read_then_close(stream, counter.clone()));
            }
        });
        HangUpServer {
            address,
            requests,
            task,
        }
    }

    /// Returns `http://127.0.0.1:PORT` followed by `path`, such as `/v1`.
    pub fn base_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Returns the number of requests whose headers arrived before the connection was closed.
    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HangUpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_then_close(mut stream: TcpStream, requests: Arc<AtomicUsize>) {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    while received.len() < MAX_READ_BYTES {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
        if received.windows(4).any(|window| window == b"\r\n\r\n") {
            requests.fetch_add(1, Ordering::SeqCst);
            // Dropping the stream closes the connection with no response.
            return;
        }
    }
}
