//! The JSON request bodies of the HTTP API: decoding any bytes into each body type never
//! panics, and a decoded body encodes back to JSON that decodes again. The first byte
//! picks the body type, so one corpus covers them all.

#![no_main]

use arbiter::server::dto;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: DeserializeOwned + Serialize>(json: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<T>(json) {
        let encoded = serde_json::to_vec(&body).expect("a decoded body encodes");
        serde_json::from_slice::<T>(&encoded).expect("an encoded body decodes");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, json)) = data.split_first() else {
        return;
    };
    match kind % 9 {
        0 => round_trip::<dto::SchemaWriteBody>(json),
        1 => round_trip::<dto::WriteBody>(json),
        2 => round_trip::<dto::ReadBody>(json),
        3 => round_trip::<dto::DeleteBody>(json),
        4 => round_trip::<dto::CheckBody>(json),
        5 => round_trip::<dto::BulkCheckBody>(json),
        6 => round_trip::<dto::ExpandBody>(json),
        7 => round_trip::<dto::LookupResourcesBody>(json),
        _ => round_trip::<dto::LookupSubjectsBody>(json),
    }
});
