//! Scoped API keys for arbiter's own API: the `--keys FILE` format, the fixed set of
//! scopes, the one table that maps every `/v1` route to the scope it needs, and the lookup
//! of a presented secret by its SHA-256.
//!
//! The key file holds hashes, never secrets:
//!
//! ```yaml
//! keys:
//!   - name: billing-service
//!     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     scopes: [check]
//! ```
//!
//! A request presents `Authorization: Bearer SECRET`; the secret is hashed and compared, in
//! constant time, with every key's hash. No key or an unknown one is
//! [`AuthError::Unauthenticated`] (401); a known key without the route's scope is
//! [`AuthError::Forbidden`] (403, naming the scope). `admin` grants every scope. `--token T`
//! is one `admin` key named `token`. The ring can be replaced while the server runs
//! (SIGHUP); readers take a snapshot, so a reload never half-applies.
//!
//! [`Keys::authorize`] is what every transport calls (the HTTP layer in `auth`, and gRPC
//! with its metadata value), so the rules are written once.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do. Every `/v1` route needs exactly one scope ([`scope_of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Check, bulk check, expand, lookup resources and lookup subjects.
    Check,
    /// Read relationships, watch, read the schema.
    Read,
    /// Write and delete relationships.
    Write,
    /// Write the schema.
    Schema,
    /// Everything, including the sync endpoint.
    Admin,
}

impl Scope {
    /// Every scope, in the order the docs list them.
    pub const ALL: [Scope; 5] = [
        Scope::Check,
        Scope::Read,
        Scope::Write,
        Scope::Schema,
        Scope::Admin,
    ];

    /// The name used in key files and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Read => "read",
            Self::Write => "write",
            Self::Schema => "schema",
            Self::Admin => "admin",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.name() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// THE table: the scope each route needs, by method and route pattern — the JSON API's
/// `/v1` routes and the gRPC methods (by their HTTP/2 path). A route missing here needs
/// `admin` (fail closed), and a test walks every documented `/v1` route to make sure none
/// is missing.
pub const ROUTE_SCOPES: &[(&str, &str, Scope)] = &[
    ("POST", "/v1/check", Scope::Check),
    ("POST", "/v1/check/bulk", Scope::Check),
    ("POST", "/v1/expand", Scope::Check),
    ("POST", "/v1/lookup/resources", Scope::Check),
    ("POST", "/v1/lookup/subjects", Scope::Check),
    // The playground's sandbox evaluates only what the request carries, never the store.
    ("POST", "/v1/playground/evaluate", Scope::Check),
    ("POST", "/v1/relationships/read", Scope::Read),
    ("GET", "/v1/watch", Scope::Read),
    ("GET", "/v1/schema", Scope::Read),
    ("POST", "/v1/relationships/write", Scope::Write),
    ("POST", "/v1/relationships/delete", Scope::Write),
    ("POST", "/v1/relationships/import", Scope::Write),
    ("POST", "/v1/schema", Scope::Schema),
    ("POST", "/v1/sync", Scope::Admin),
    // SpiceDB's gRPC API on the same port (HTTP/2 POSTs to `/package.Service/Method`).
    (
        "POST",
        "/authzed.api.v1.PermissionsService/CheckPermission",
        Scope::Check,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/CheckBulkPermissions",
        Scope::Check,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/ExpandPermissionTree",
        Scope::Check,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/LookupResources",
        Scope::Check,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/LookupSubjects",
        Scope::Check,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/ReadRelationships",
        Scope::Read,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/ExportBulkRelationships",
        Scope::Read,
    ),
    ("POST", "/authzed.api.v1.WatchService/Watch", Scope::Read),
    (
        "POST",
        "/authzed.api.v1.SchemaService/ReadSchema",
        Scope::Read,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/WriteRelationships",
        Scope::Write,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/DeleteRelationships",
        Scope::Write,
    ),
    (
        "POST",
        "/authzed.api.v1.PermissionsService/ImportBulkRelationships",
        Scope::Write,
    ),
    (
        "POST",
        "/authzed.api.v1.SchemaService/WriteSchema",
        Scope::Schema,
    ),
];

/// The scope `method path` needs: from [`ROUTE_SCOPES`], `admin` for anything else.
pub fn scope_of(method: &str, route: &str) -> Scope {
    ROUTE_SCOPES
        .iter()
        .find(|(m, r, _)| m.eq_ignore_ascii_case(method) && *r == route)
        .map_or(Scope::Admin, |(_, _, scope)| *scope)
}

/// The name of the key a request authenticated with; logs and metrics carry it, never the
/// secret. `anonymous` when the server runs without keys. Shared with the key, so naming
/// the key of a request allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName(pub Arc<str>);

impl KeyName {
    /// The name of every request of a server without keys.
    pub fn anonymous() -> Self {
        static ANONYMOUS: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("anonymous"));
        Self(Arc::clone(&ANONYMOUS))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a request may not go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No bearer secret, or one no key has.
    #[error("missing or invalid bearer token")]
    Unauthenticated,
    /// A known key without the scope the route needs.
    #[error("key `{key}` lacks the `{scope}` scope")]
    Forbidden { key: String, scope: Scope },
}

/// One key: its name, the SHA-256 of its secret and its scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub name: Arc<str>,
    sha256: [u8; 32],
    pub scopes: BTreeSet<Scope>,
}

impl ApiKey {
    /// Whether this key may do what `scope` covers (`admin` covers everything).
    pub fn grants(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// A validated set of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<ApiKey>,
}

/// Why a key file cannot be used. Rendered `FILE: message` or `FILE:LINE: message`.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{}: cannot read key file: {message}", .file.display())]
    Unreadable { file: PathBuf, message: String },
    #[error("{}:{line}: {message}", .file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    sha256: String,
    scopes: Vec<String>,
}

impl KeyRing {
    /// Reads and validates a key file.
    pub fn load(file: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(file).map_err(|err| KeyFileError::Unreadable {
            file: file.to_path_buf(),
            message: err.to_string(),
        })?;
        Self::parse(file, &text)
    }

    /// Validates the text of a key file; `file` is only for messages.
    pub fn parse(file: &Path, text: &str) -> Result<Self, KeyFileError> {
        let invalid = |line: usize, message: String| KeyFileError::Invalid {
            file: file.to_path_buf(),
            line,
            message,
        };
        let raw: RawFile = yaml_serde::from_str(text).map_err(|err| {
            let line = err.location().map_or(1, |loc| loc.line());
            invalid(line, format!("invalid key file: {err}"))
        })?;
        let mut ring = KeyRing::default();
        let mut search_from = 0;
        for raw_key in raw.keys {
            let line = line_of(text, &mut search_from);
            let key = parse_key(raw_key).map_err(|message| invalid(line, message))?;
            if ring.keys.iter().any(|it| it.name == key.name) {
                return Err(invalid(line, format!("duplicate key name `{}`", key.name)));
            }
            if ring.keys.iter().any(|it| it.sha256 == key.sha256) {
                return Err(invalid(
                    line,
                    format!("key `{}` has the same sha256 as another key", key.name),
                ));
            }
            ring.keys.push(key);
        }
        Ok(ring)
    }

    /// One `admin` key named `token` whose secret is `token` (the `--token` flag).
    pub fn from_token(token: &str) -> Self {
        Self {
            keys: vec![ApiKey {
                name: Arc::from("token"),
                sha256: Sha256::digest(token.trim().as_bytes()).into(),
                scopes: BTreeSet::from([Scope::Admin]),
            }],
        }
    }

    /// This ring plus `other`'s keys (used to keep `--token` next to `--keys`).
    pub fn with(mut self, other: KeyRing) -> Self {
        self.keys.extend(other.keys);
        self
    }

    /// The names of the keys, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| &*key.name)
    }

    /// The key whose secret is `secret`. Every key's hash is compared, in constant time,
    /// so the time taken does not tell which key was close.
    pub fn find(&self, secret: &str) -> Option<&ApiKey> {
        let digest: [u8; 32] = Sha256::digest(secret.trim().as_bytes()).into();
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.sha256.ct_eq(&digest)) {
                found = Some(key);
            }
        }
        found
    }

    /// Authenticates `authorization` (the raw header or metadata value, `Bearer SECRET`)
    /// and checks it grants `scope`.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<KeyName, AuthError> {
        let secret = authorization.and_then(|value| value.strip_prefix("Bearer "));
        self.authorize_secret(secret, scope)
    }

    /// [`KeyRing::authorize`] for a secret already taken out of its `Bearer ` header.
    pub fn authorize_secret(
        &self,
        secret: Option<&str>,
        scope: Scope,
    ) -> Result<KeyName, AuthError> {
        let secret = secret.ok_or(AuthError::Unauthenticated)?;
        let key = self.find(secret).ok_or(AuthError::Unauthenticated)?;
        if key.grants(scope) {
            Ok(KeyName(Arc::clone(&key.name)))
        } else {
            Err(AuthError::Forbidden {
                key: key.name.to_string(),
                scope,
            })
        }
    }
}

/// The keys a running server accepts; `None` inside means no authentication at all.
/// Replaced whole on reload.
#[derive(Default)]
pub struct Keys {
    ring: RwLock<Option<Arc<KeyRing>>>,
}

impl Keys {
    /// Keys that accept the ring (`None`: every request goes through as `anonymous`).
    pub fn new(ring: Option<KeyRing>) -> Self {
        Self {
            ring: RwLock::new(ring.map(Arc::new)),
        }
    }

    /// Whether requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.ring.read().is_some()
    }

    /// Replaces the accepted keys (a SIGHUP reload).
    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write() = Some(Arc::new(ring));
    }

    /// The rule for every transport: `Ok(name)` if the request may go on.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        scope: Scope,
    ) -> Result<KeyName, AuthError> {
        let ring = self.ring.read().clone();
        match ring {
            None => Ok(KeyName::anonymous()),
            Some(ring) => ring.authorize(authorization, scope),
        }
    }

    /// [`Keys::authorize`] for a secret already taken out of its `Bearer ` header (gRPC
    /// metadata, whose scheme may be written in either case). The scope is worked out
    /// only when there are keys to judge it by: a server without keys skips the search
    /// of the route table on every call.
    pub fn authorize_secret(
        &self,
        secret: Option<&str>,
        scope: impl FnOnce() -> Scope,
    ) -> Result<KeyName, AuthError> {
        match self.ring.read().as_deref() {
            None => Ok(KeyName::anonymous()),
            Some(ring) => ring.authorize_secret(secret, scope()),
        }
    }
}

fn parse_key(raw: RawKey) -> Result<ApiKey, String> {
    let name = raw.name.trim().to_string();
    if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "key name `{}` must be non-empty without spaces",
            raw.name
        ));
    }
    let sha256 = decode_sha256(&raw.sha256).ok_or_else(|| {
        format!(
            "key `{name}`: `sha256` must be 64 hex digits (the SHA-256 of the secret), not `{}`",
            raw.sha256
        )
    })?;
    if raw.scopes.is_empty() {
        return Err(format!("key `{name}` has no scopes"));
    }
    let mut scopes = BTreeSet::new();
    for text in &raw.scopes {
        let scope = Scope::parse(text).ok_or_else(|| {
            format!(
                "key `{name}`: unknown scope `{text}` (expected one of check, read, write, schema, admin)"
            )
        })?;
        scopes.insert(scope);
    }
    Ok(ApiKey {
        name: Arc::from(name),
        sha256,
        scopes,
    })
}

fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (idx, pair) in text.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[idx] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// The 1-based line of the next `name:` key after line `after` (a best effort for
/// messages; the YAML decoder gives values without positions).
fn line_of(text: &str, after: &mut usize) -> usize {
    let found = text.lines().enumerate().skip(*after).find(|(_, line)| {
        let line = line.trim_start();
        let line = line.strip_prefix('-').map_or(line, str::trim_start);
        line.starts_with("name:")
    });
    match found {
        Some((idx, _)) => {
            *after = idx + 1;
            idx + 1
        }
        None => 1,
    }
}

/// The hex SHA-256 of `secret`, as a key file wants it.
pub fn sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> Result<KeyRing, KeyFileError> {
        KeyRing::parse(Path::new("keys.yaml"), text)
    }

    fn file_with(name: &str, secret: &str, scopes: &str) -> String {
        format!(
            "keys:\n  - name: {name}\n    sha256: {}\n    scopes: [{scopes}]\n",
            sha256_hex(secret)
        )
    }

    #[test]
    fn known_key_with_scope_passes_and_names_itself() {
        let ring = ring(&file_with("svc", "s3cret", "check, read")).unwrap();
        assert_eq!(
            ring.authorize(Some("Bearer s3cret"), Scope::Check),
            Ok(KeyName(Arc::from("svc")))
        );
        assert_eq!(
            ring.authorize(Some("Bearer s3cret"), Scope::Write),
            Err(AuthError::Forbidden {
                key: "svc".to_string(),
                scope: Scope::Write
            })
        );
        for header in [
            None,
            Some("Bearer nope"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            assert_eq!(
                ring.authorize(header, Scope::Check),
                Err(AuthError::Unauthenticated),
                "{header:?}"
            );
        }
    }

    #[test]
    fn admin_grants_every_scope_and_token_is_admin() {
        let ring = KeyRing::from_token("t0ken");
        for scope in Scope::ALL {
            assert!(ring.authorize(Some("Bearer t0ken"), scope).is_ok());
        }
    }

    #[test]
    fn bad_files_are_refused_with_a_line() {
        let hash = sha256_hex("x");
        let cases = [
            (
                format!("keys:\n  - name: a\n    sha256: {hash}\n    scopes: [delete]\n"),
                "keys.yaml:2: key `a`: unknown scope `delete`",
            ),
            (
                "keys:\n  - name: a\n    sha256: abc\n    scopes: [read]\n".to_string(),
                "keys.yaml:2: key `a`: `sha256` must be 64 hex digits",
            ),
            (
                format!("keys:\n  - name: a\n    sha256: {hash}\n    scopes: []\n"),
                "keys.yaml:2: key `a` has no scopes",
            ),
            (
                format!(
                    "keys:\n  - name: a\n    sha256: {hash}\n    scopes: [read]\n    secret: x\n"
                ),
                "keys.yaml:5: invalid key file: keys[0]: unknown field `secret`",
            ),
            (
                format!("keyz:\n  - name: a\n    sha256: {hash}\n    scopes: [read]\n"),
                "keys.yaml:1: invalid key file: unknown field `keyz`",
            ),
            (
                format!(
                    "keys:\n  - name: a\n    sha256: {hash}\n    scopes: [read]\n  - name: a\n    sha256: {}\n    scopes: [read]\n",
                    sha256_hex("y")
                ),
                "keys.yaml:5: duplicate key name `a`",
            ),
            (
                format!(
                    "keys:\n  - name: a\n    sha256: {hash}\n    scopes: [read]\n  - name: b\n    sha256: {hash}\n    scopes: [read]\n"
                ),
                "keys.yaml:5: key `b` has the same sha256 as another key",
            ),
            ("".to_string(), "keys.yaml:1: invalid key file"),
        ];
        for (text, expected) in cases {
            let err = ring(&text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        }
    }

    #[test]
    fn unlisted_v1_routes_need_admin() {
        assert_eq!(scope_of("POST", "/v1/check"), Scope::Check);
        assert_eq!(scope_of("GET", "/v1/schema"), Scope::Read);
        assert_eq!(scope_of("POST", "/v1/schema"), Scope::Schema);
        assert_eq!(scope_of("DELETE", "/v1/schema"), Scope::Admin);
        assert_eq!(scope_of("POST", "/v1/something-new"), Scope::Admin);
        assert_eq!(
            scope_of("POST", "/authzed.api.v1.PermissionsService/CheckPermission"),
            Scope::Check
        );
        assert_eq!(
            scope_of("POST", "/authzed.api.v1.SchemaService/WriteSchema"),
            Scope::Schema
        );
        assert_eq!(
            scope_of("POST", "/authzed.api.v1.ExperimentalService/Anything"),
            Scope::Admin
        );
    }

    #[test]
    fn keys_without_ring_let_everything_through_and_reload_replaces() {
        let keys = Keys::new(None);
        assert!(keys.authorize(None, Scope::Admin).is_ok());
        keys.replace(ring(&file_with("a", "one", "read")).unwrap());
        assert!(keys.authorize(None, Scope::Read).is_err());
        assert!(keys.authorize(Some("Bearer one"), Scope::Read).is_ok());
        keys.replace(ring(&file_with("b", "two", "read")).unwrap());
        assert!(keys.authorize(Some("Bearer one"), Scope::Read).is_err());
        assert!(keys.authorize(Some("Bearer two"), Scope::Read).is_ok());
    }
}
