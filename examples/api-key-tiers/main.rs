//! `cargo run --example api-key-tiers -- --arbiter URL [--token T] [--addr HOST:PORT]`:
//! a stand-in product API whose middleware asks arbiter which API-key tier may do what
//! (see README.md here and `middleware.rs`).

mod middleware;

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|it| it == name)
            .and_then(|idx| args.get(idx + 1))
            .cloned()
    };
    let Some(arbiter) = flag("--arbiter") else {
        eprintln!(
            "usage: api-key-tiers --arbiter URL [--token T] [--addr HOST:PORT] [--keys FILE]"
        );
        return ExitCode::from(2);
    };
    let keys_file =
        flag("--keys").unwrap_or_else(|| "examples/api-key-tiers/keys.json".to_string());
    let keys = match std::fs::read_to_string(&keys_file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{keys_file}: cannot read file: {err}");
            return ExitCode::from(2);
        }
    };
    let tiers = match middleware::Tiers::new(&keys, &arbiter, flag("--token")) {
        Ok(tiers) => Arc::new(tiers),
        Err(message) => {
            eprintln!("{keys_file}: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = flag("--addr").unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on `{addr}`: {err}");
            return ExitCode::from(2);
        }
    };
    if let Ok(local) = listener.local_addr() {
        println!("listening on http://{local}");
    }
    match axum::serve(listener, middleware::app(tiers)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("server failed: {err}");
            ExitCode::from(2)
        }
    }
}
