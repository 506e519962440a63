//! A TCP proxy the tests can cut and restore, to make a real database unreachable without
//! touching the shared MariaDB: point the engine at the proxy's port, `stop()` it (the listener
//! closes and every live connection is shut down, so clients see a dropped link and refused
//! connects), then `start()` it again on the same port.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    running: Mutex<Option<Running>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl TcpProxy {
    /// A proxy on a free loopback port forwarding to `target`, already started.
    pub fn new(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let proxy = TcpProxy {
            addr,
            target,
            running: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn serve(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let target = self.target;
        let accept = {
            let stop = stop.clone();
            let conns = conns.clone();
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                        continue;
                    };
                    {
                        let mut all = conns.lock().unwrap();
                        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                            all.push(a);
                            all.push(b);
                        }
                    }
                    std::thread::spawn(move || pump(client, server));
                    std::thread::spawn(move || pump(s2, c2));
                }
            })
        };
        *self.running.lock().unwrap() = Some(Running {
            stop,
            accept,
            conns,
        });
    }

    /// Cut: refuse new connections and drop the live ones.
    pub fn stop(&self) {
        let Some(r) = self.running.lock().unwrap().take() else {
            return;
        };
        r.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(self.addr);
        let _ = r.accept.join();
        for c in r.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Restore on the same port.
    pub fn start(&self) {
        if self.running.lock().unwrap().is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr).expect("re-bind proxy port");
        self.serve(listener);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
