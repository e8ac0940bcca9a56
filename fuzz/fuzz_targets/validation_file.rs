//! Validation-file YAML: reading it never panics, and a file that reads is loaded and run
//! on an in-memory engine without panicking (its assertions may fail; that is an answer).

#![no_main]

use std::path::Path;

use arbiter::validation::{Session, ValidationFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `schemaFile` is resolved next to this (nonexistent) path: nothing on disk is read.
    let Ok(file) = ValidationFile::parse(Path::new("/nonexistent/fuzz.yaml"), text) else {
        return;
    };
    let Ok(mut session) = Session::new() else {
        return;
    };
    if session.load(&file).is_empty() {
        let _ = session.run(&file);
    }
});
