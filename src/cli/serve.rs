//! `ferry coap-serve`: serves one file over CoAP with ferry's own endpoint and UDP shell, the
//! same code ferryd runs. For trying a device's block-wise fetch against ferry without a
//! daemon, and for `scripts/bench-coap.sh`.
//!
//! It prints one line, `listening on ADDR[ ADDR...]`, once the sockets are bound (so a script
//! that asked for port 0 learns the port), serves until SIGINT or SIGTERM, then prints the
//! endpoint's counters to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::coap::udp;
use crate::coap::{content_format, Config, Endpoint, Router, StaticResource};

#[derive(Args)]
pub struct ServeArgs {
    /// UDP address to serve on; repeat for several. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "[::1]:5683")]
    listen: Vec<SocketAddr>,
    /// The file to serve; read once at start.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// The resource path it is served under.
    #[arg(long, value_name = "URI-PATH", default_value = "/file")]
    path: String,
    /// Block size (bytes, a power of two 16..=1024) when the client sends no Block2.
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = parse_block_size)]
    block_size: u16,
}

fn parse_block_size(s: &str) -> Result<u16, String> {
    let n: u16 = s.parse().map_err(|e| format!("{e}"))?;
    if n.is_power_of_two() && (16..=1024).contains(&n) {
        Ok(n)
    } else {
        Err("a power of two from 16 to 1024".into())
    }
}

/// SZX from a block size: 16 << szx == size.
fn szx(block_size: u16) -> u8 {
    (block_size.trailing_zeros() as u8).saturating_sub(4)
}

pub async fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let body = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let len = body.len();
    let mut router = Router::new();
    router.insert_static(&args.path, StaticResource::new(body, content_format::OCTET_STREAM));
    let config = Config { default_szx: szx(args.block_size), ..Config::default() };
    let endpoint = Endpoint::new(config, router);
    let (shell, handle, mut events) = udp::bind(&args.listen, endpoint).await?;
    let addrs: Vec<String> = handle.local_addrs().iter().map(ToString::to_string).collect();
    println!("listening on {}", addrs.join(" "));
    eprintln!("ferry coap-serve: {} ({len} bytes) at {}", args.file.display(), args.path);

    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(shell.run(shutdown.clone()));
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            // Nothing here is a client; drain so the shell never counts a drop.
            Some(_) = events.recv() => {}
        }
    }
    shutdown.cancel();
    let endpoint = runner.await.context("the CoAP shell panicked")?;
    eprintln!("ferry coap-serve: {:?}", endpoint.metrics());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_map_to_szx() {
        assert_eq!(szx(16), 0);
        assert_eq!(szx(64), 2);
        assert_eq!(szx(1024), 6);
        assert!(parse_block_size("1000").is_err());
        assert!(parse_block_size("2048").is_err());
        assert_eq!(parse_block_size("512"), Ok(512));
    }
}
