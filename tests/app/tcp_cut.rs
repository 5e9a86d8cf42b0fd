//! A TCP relay that can be cut: in front of a database server, it plays an outage and the
//! server's return, without touching the server. Two kinds of outage: every connection closed and
//! new ones closed at once ([`TcpCut::cut`]: a server that went away), or every connection left
//! open and silent ([`TcpCut::hold`]: a network partition, where nothing says the server is gone).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::net::{TcpListener, TcpStream};

pub struct TcpCut {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// While set, a cut keeps sockets open instead of closing them.
    silent: Arc<AtomicBool>,
    /// Bumped by each cut: relays of an earlier generation end.
    generation: Arc<AtomicU64>,
}

impl TcpCut {
    /// Relays connections on a loopback port to `upstream`.
    pub async fn spawn(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (is_cut, is_silent, current) = (cut.clone(), silent.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    let (is_cut, is_silent) = (is_cut.clone(), is_silent.clone());
                    // Silent: held open, unanswered, until the outage ends.
                    tokio::spawn(async move {
                        while is_silent.load(Ordering::SeqCst) && is_cut.load(Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        drop(client);
                    });
                    continue;
                }
                let born = current.load(Ordering::SeqCst);
                let (current, is_cut, is_silent) =
                    (current.clone(), is_cut.clone(), is_silent.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let relay = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while current.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = relay => {}
                        () = cut => {
                            while is_silent.load(Ordering::SeqCst) && is_cut.load(Ordering::SeqCst) {
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            silent,
            generation,
        }
    }

    /// The outage: open connections dropped, new ones closed as soon as they are accepted.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The partition: open connections stop carrying anything but stay open, and new ones are
    /// accepted and never answered.
    pub fn hold(&self) {
        self.silent.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// The server is back (held connections are closed then, as a healed partition's peer resets
    /// them).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.silent.store(false, Ordering::SeqCst);
    }
}
