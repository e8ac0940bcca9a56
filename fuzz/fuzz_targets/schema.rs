//! Schema text → parse → compile → format: nothing panics or overflows, and the canonical
//! text re-parses and compiles to the same schema (and formats to itself).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let formatted = arbiter::schema::format(text);
    let Ok(schema) = arbiter::schema::parse_and_compile(text) else {
        return;
    };
    let formatted = formatted.expect("a schema that compiles also formats");
    assert_eq!(formatted, schema.source, "format and compile agree");
    let again = arbiter::schema::parse_and_compile(&formatted).expect("canonical text compiles");
    assert_eq!(again, schema, "canonical text compiles to the same schema");
    assert_eq!(again.source, formatted, "formatting is idempotent");
});
