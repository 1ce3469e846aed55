//! `burn-ternary serve`: a Burn Remote server (websocket) hosting one backend's devices, with
//! burn-ternary's ops registered, until Ctrl+C or SIGTERM.

use std::net::{IpAddr, TcpListener};

use burn::server::WebSocketTransport;
use burn_ternary::backend::remote::op;
use burn_ternary::device::{parse_device, ternary_server};

pub(crate) fn run(
    bind: IpAddr,
    port: u16,
    devices: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(remote) = devices.iter().find(|d| d.trim().starts_with("ws://")) {
        return Err(
            format!("device {remote:?} is a remote device: a server hosts local ones").into(),
        );
    }
    let hosted = devices
        .iter()
        .map(|name| parse_device(name))
        .collect::<Result<Vec<_>, _>>()?;
    let server = ternary_server(hosted)?;
    // Bound here, so that port 0 (any free port) can be printed before a client dials.
    let listener = TcpListener::bind((bind, port))
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e}"))?;
    let address = listener.local_addr()?;
    println!("listening on ws://{address}");
    for (i, name) in devices.iter().enumerate() {
        println!("  device #{i}: {name}");
    }
    println!("  ternary ops: {}", op::ALL.join(", "));
    if address.ip().is_unspecified() {
        println!(
            "clients: --device ws://<this host's address>:{} (or ...#N); Ctrl+C stops",
            address.port()
        );
    } else {
        println!("clients: --device ws://{address} (or ws://{address}#N); Ctrl+C stops");
    }
    server.serve(WebSocketTransport::from_listener(listener))?;
    println!("server stopped");
    Ok(())
}
