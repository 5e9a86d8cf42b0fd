//! A TCP relay that can be cut: in front of a database server, it plays an outage (every
//! connection reset, new ones refused) and the server's return, without touching the server.

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
    /// Bumped by each cut: relays of an earlier generation end.
    generation: Arc<AtomicU64>,
}

impl TcpCut {
    /// Relays connections on a loopback port to `upstream`.
    pub async fn spawn(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (is_cut, current) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let born = current.load(Ordering::SeqCst);
                let current = current.clone();
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
                        () = cut => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            generation,
        }
    }

    /// The outage: open connections dropped, new ones closed as soon as they are accepted.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The server is back.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
