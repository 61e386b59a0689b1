//! Secret-stream throughput, Rust to Rust over loopback TCP: 64 KiB messages and 128-byte
//! messages. The JS anchor is `node compat-tests/bench_secret_stream.js` (same sizes).
//! Run: `cargo bench --bench net_secret_stream`.

use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use vitra::net::{KeyPair, NetError, SecretStream, SecretStreamConfig};

async fn pair() -> Result<(SecretStream<TcpStream>, SecretStream<TcpStream>), NetError> {
    let io = |source| NetError::Io {
        during: "bench setup",
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (client, (server, _)) = (client.map_err(io)?, server.map_err(io)?);
    let cfg = SecretStreamConfig::default();
    let (ka, kb) = (KeyPair::generate()?, KeyPair::generate()?);
    let (a, b) = tokio::join!(
        SecretStream::initiator(client, &ka, &cfg),
        SecretStream::responder(server, &kb, &cfg)
    );
    Ok((a?, b?))
}

async fn run(size: usize, count: usize) -> Result<(f64, f64), NetError> {
    let (a, b) = pair().await?;
    let (_ra, mut wa, _) = a.into_split();
    let (mut rb, _wb, _) = b.into_split();
    let msg = vec![7u8; size];
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..count {
            wa.send(&msg).await?;
        }
        Ok::<_, NetError>(wa)
    });
    let mut bytes = 0usize;
    for _ in 0..count {
        bytes += rb.recv().await?.map(|m| m.len()).unwrap_or(0);
    }
    let _wa = sender.await.map_err(|e| NetError::ConnectionClosed {
        reason: e.to_string(),
    })??;
    let secs = start.elapsed().as_secs_f64();
    Ok((bytes as f64 / secs / 1e6, count as f64 / secs))
}

fn main() -> Result<(), NetError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| NetError::Io {
            during: "starting the runtime",
            source,
        })?;
    rt.block_on(async {
        let (mbps, _) = run(64 * 1024, 2048).await?;
        println!("secret stream, 64 KiB messages x 2048: {mbps:.0} MB/s");
        let (_, mps) = run(128, 200_000).await?;
        println!("secret stream, 128 B messages x 200000: {mps:.0} messages/s");
        println!("JS anchor: node compat-tests/bench_secret_stream.js");
        Ok(())
    })
}
