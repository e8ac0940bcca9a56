//! Generates the tonic *server* traits of SpiceDB's `authzed.api.v1` services.
//!
//! The message types come ready-made from the registry crate `spicedb-rs-proto`, which
//! ships only the client side. Its package also carries the upstream `.proto` files; this
//! script finds that package through `cargo metadata` (so the files are the exact ones the
//! locked crate was built from), compiles the three services with the vendored `protoc`
//! (no system protoc needed) and maps every message back onto the crate's types with
//! `extern_path`, so client and server share one set of types. Nothing upstream is copied
//! into this repository.
//!
//! `ARBITER_AUTHZED_PROTO_DIR` overrides the lookup (a directory holding `authzed/api/v1`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that ships the message types and the `.proto` files.
const PROTO_PACKAGE: &str = "spicedb-rs-proto";

/// The services arbiter serves.
const SERVICES: [&str; 3] = [
    "authzed/api/v1/permission_service.proto",
    "authzed/api/v1/schema_service.proto",
    "authzed/api/v1/watch_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ARBITER_AUTHZED_PROTO_DIR");
    let proto_root = match env::var_os("ARBITER_AUTHZED_PROTO_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => package_dir(PROTO_PACKAGE)?.join("proto"),
    };
    let files: Vec<PathBuf> = SERVICES.iter().map(|it| proto_root.join(it)).collect();
    for file in &files {
        if !file.is_file() {
            return Err(format!("missing proto file `{}`", file.display()).into());
        }
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        // Methods arbiter does not implement answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .extern_path(".authzed.api.v1", "::spicedb_rs_proto::authzed::api::v1")
        .extern_path(".google.rpc", "::spicedb_rs_proto::google::rpc")
        .compile_with_config(config, &files, &[proto_root])?;
    Ok(())
}

/// The source directory of the locked package `name`, from `cargo metadata`.
fn package_dir(name: &str) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(&env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    // Only this target's dependencies: cargo downloads no other platform's crates, and
    // without the filter `--offline` fails on a machine that never fetched them
    // (`anstyle-wincon`, a Windows-only dependency of clap, on a fresh image).
    let target = env::var("TARGET")?;
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &target,
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("no packages in cargo metadata")?;
    let manifest_path = packages
        .iter()
        .find(|it| it["name"] == name)
        .and_then(|it| it["manifest_path"].as_str())
        .ok_or_else(|| format!("package `{name}` not found in cargo metadata"))?;
    let dir = Path::new(manifest_path)
        .parent()
        .ok_or("package manifest has no directory")?;
    println!("cargo:rerun-if-changed={}", dir.join("proto").display());
    Ok(dir.to_path_buf())
}
