//! A local forwarding proxy that lets a headless browser use the hub's dashboard as an
//! operator. The dashboard identifies operators by their TLS client certificate, which
//! headless Chromium cannot easily be given; so the browser speaks plain HTTP to this proxy on
//! loopback, and the proxy opens, for each of the browser's connections, a TLS connection to
//! the dashboard presenting the operator's certificate, then copies bytes both ways. What the
//! browser sends (its `Sec-Fetch-Site`, its form posts) reaches the hub unchanged.

use std::{net::SocketAddr, path::Path, sync::Arc};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::{TlsConnector, rustls::pki_types::ServerName};

use crate::Net;

/// The proxy, listening until dropped.
pub struct OperatorProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for OperatorProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OperatorProxy {
    /// A proxy to `net`'s dashboard as the operator whose certificate and key are `cert` and
    /// `key` (PEM files), on a free port of 127.0.0.1.
    pub async fn start(net: &Net, cert: &Path, key: &Path) -> Self {
        let connector = TlsConnector::from(Arc::new(net.dashboard_tls(Some((cert, key)))));
        let dashboard = net.dashboard_addr();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let task = tokio::spawn(async move {
            while let Ok((mut browser, _)) = listener.accept().await {
                let connector = connector.clone();
                tokio::spawn(async move {
                    let Ok(tcp) = tokio::net::TcpStream::connect(dashboard).await else {
                        return;
                    };
                    let name = ServerName::try_from("localhost").expect("a name");
                    let Ok(mut hub) = connector.connect(name, tcp).await else {
                        return;
                    };
                    // Either side closing ends both.
                    let _ = tokio::io::copy_bidirectional(&mut browser, &mut hub).await;
                });
            }
        });
        Self { addr, task }
    }

    /// A proxy as the harness's operator `ops`.
    pub async fn ops(net: &Net) -> Self {
        let operators = net.pki().join("operators");
        Self::start(net, &operators.join("ops.pem"), &operators.join("ops.key")).await
    }

    /// Where the proxy listens (plain HTTP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, to which paths of the dashboard are appended.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}
