//! `cargo run --example permissions-as-code -- APPS_JSON ENVIRONMENT > permissions.yaml`:
//! generates the permissions file `arbiter serve --bootstrap` loads (see README.md here).

mod generate;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [apps, environment] = args.as_slice() else {
        eprintln!("usage: permissions-as-code APPS_JSON ENVIRONMENT");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(apps) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{apps}: cannot read file: {err}");
            return ExitCode::from(2);
        }
    };
    match generate::render(&text, environment) {
        Ok(file) => {
            print!("{file}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{apps}: {message}");
            ExitCode::from(1)
        }
    }
}
