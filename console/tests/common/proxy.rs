//! A TCP proxy on loopback that can black-hole its traffic, as a broken network link does:
//! while cut it still accepts connections and reads what clients send, but forwards nothing
//! and answers nothing. Connections that lived through a cut stay dead (their streams are
//! broken halfway) and are closed when the link comes back; new connections then work.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    forwarding: AtomicBool,
    /// Bumped by every cut and restore: a connection forwards only in the generation it was
    /// accepted in.
    generation: AtomicU64,
    stop: AtomicBool,
    /// Client sockets, to close the dead ones on restore.
    clients: Mutex<Vec<(u64, TcpStream)>>,
}

/// See the [module docs](self).
pub struct BlackholeProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl BlackholeProxy {
    /// A proxy to `upstream` (host:port), forwarding.
    pub fn start(upstream: SocketAddr) -> BlackholeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.forwarding.store(true, Ordering::SeqCst);
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => connection(client, upstream, &shared),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("proxy accept: {e}"),
                    }
                }
            })
        };
        BlackholeProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for AWS_ENDPOINT_URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop forwarding: everything sent is swallowed, nothing comes back.
    pub fn cut(&self) {
        self.shared.forwarding.store(false, Ordering::SeqCst);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Forward again (new connections); the connections that lived through the cut are closed.
    pub fn restore(&self) {
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.forwarding.store(true, Ordering::SeqCst);
        let mut clients = self.shared.clients.lock().unwrap();
        clients.retain(|(born, stream)| {
            if *born < generation {
                let _ = stream.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, stream) in self.shared.clients.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn connection(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) {
    client.set_nonblocking(false).unwrap();
    let born = shared.generation.load(Ordering::SeqCst);
    if let Ok(clone) = client.try_clone() {
        shared.clients.lock().unwrap().push((born, clone));
    }
    let server = if shared.forwarding.load(Ordering::SeqCst) {
        TcpStream::connect(upstream).ok()
    } else {
        None
    };
    let Some(server) = server else {
        // Accepted during a cut: swallow whatever comes until the client gives up.
        let shared = Arc::clone(shared);
        std::thread::spawn(move || pump(client, None, born, &shared));
        return;
    };
    let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let s1 = Arc::clone(shared);
    let s2 = Arc::clone(shared);
    std::thread::spawn(move || pump(client, Some(server), born, &s1));
    std::thread::spawn(move || pump(server2, Some(client2), born, &s2));
}

/// Copies `from` -> `to` while the connection's generation is forwarding; swallows otherwise.
fn pump(mut from: TcpStream, to: Option<TcpStream>, born: u64, shared: &Shared) {
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut to = to;
    let mut buf = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => break,
        };
        let alive = shared.forwarding.load(Ordering::SeqCst)
            && shared.generation.load(Ordering::SeqCst) == born;
        if !alive {
            // Dead for good: the stream is broken halfway.
            to = None;
            continue;
        }
        if let Some(out) = to.as_mut() {
            if out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    if let Some(out) = to {
        let _ = out.shutdown(Shutdown::Write);
    }
}
