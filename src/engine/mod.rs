//! The check engine: check, bulk check, expand and lookups over one revision of the store.
