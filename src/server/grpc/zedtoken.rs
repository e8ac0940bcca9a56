//! ZedTokens and cursors: the opaque strings that carry a revision through SpiceDB's API.
//!
//! A ZedToken is `base64url(version byte 1 ‖ revision as u64 big-endian)`. Revisions are
//! the store's (one total order, shared by every server on one database), so a token
//! issued by one server means the same snapshot on every other. A cursor adds the
//! position to resume after: `base64url(version byte 1 ‖ revision ‖ position text)`, and a
//! resumed stream reads at exactly that revision, as SpiceDB's cursors do.
//!
//! The four consistency requirements map one to one onto [`Consistency`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use spicedb_rs_proto::authzed::api::v1 as pb;
use tonic::Status;

use crate::engine::Consistency;
use crate::model::Revision;

/// The format version of tokens and cursors; a token of another version is refused.
const VERSION: u8 = 1;

/// The ZedToken of `revision`.
pub fn encode(revision: Revision) -> pb::ZedToken {
    let mut bytes = Vec::with_capacity(9);
    bytes.push(VERSION);
    bytes.extend_from_slice(&revision.0.to_be_bytes());
    pb::ZedToken {
        token: URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// The revision a ZedToken carries; INVALID_ARGUMENT when it is not one of ours.
pub fn decode(token: &pb::ZedToken) -> Result<Revision, Status> {
    let bytes = decode_bytes(&token.token, "zedtoken")?;
    let revision = bytes
        .get(..8)
        .filter(|_| bytes.len() == 8)
        .and_then(|it| <[u8; 8]>::try_from(it).ok())
        .ok_or_else(|| malformed("zedtoken", &token.token))?;
    Ok(Revision(u64::from_be_bytes(revision)))
}

/// A cursor resuming after `position` in a stream answered at `revision`.
pub fn encode_cursor(revision: Revision, position: &str) -> pb::Cursor {
    let mut bytes = Vec::with_capacity(9 + position.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(&revision.0.to_be_bytes());
    bytes.extend_from_slice(position.as_bytes());
    pb::Cursor {
        token: URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// The revision and position of a cursor; INVALID_ARGUMENT when it is not one of ours.
pub fn decode_cursor(cursor: &pb::Cursor) -> Result<(Revision, String), Status> {
    let bytes = decode_bytes(&cursor.token, "cursor")?;
    let revision = bytes
        .get(..8)
        .and_then(|it| <[u8; 8]>::try_from(it).ok())
        .ok_or_else(|| malformed("cursor", &cursor.token))?;
    let position =
        String::from_utf8(bytes[8..].to_vec()).map_err(|_| malformed("cursor", &cursor.token))?;
    Ok((Revision(u64::from_be_bytes(revision)), position))
}

/// The engine's consistency mode for a request's `consistency` (absent = minimize
/// latency, SpiceDB's default).
pub fn consistency(requested: Option<&pb::Consistency>) -> Result<Consistency, Status> {
    use pb::consistency::Requirement;
    Ok(match requested.and_then(|it| it.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(_)) => Consistency::MinimizeLatency,
        Some(Requirement::FullyConsistent(_)) => Consistency::Full,
        Some(Requirement::AtLeastAsFresh(token)) => Consistency::AtLeastAsFresh {
            revision: decode(token)?,
        },
        Some(Requirement::AtExactSnapshot(token)) => Consistency::AtExactSnapshot {
            revision: decode(token)?,
        },
    })
}

/// The consistency of a request that may resume from a cursor: a cursor pins the
/// revision it was issued at; otherwise the request's own consistency applies.
pub fn resume(
    requested: Option<&pb::Consistency>,
    cursor: Option<&pb::Cursor>,
) -> Result<(Consistency, Option<String>), Status> {
    match cursor {
        Some(cursor) => {
            let (revision, position) = decode_cursor(cursor)?;
            Ok((Consistency::AtExactSnapshot { revision }, Some(position)))
        }
        None => Ok((consistency(requested)?, None)),
    }
}

fn decode_bytes(text: &str, what: &str) -> Result<Vec<u8>, Status> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| malformed(what, text))?;
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest.to_vec()),
        _ => Err(malformed(what, text)),
    }
}

fn malformed(what: &str, text: &str) -> Status {
    Status::invalid_argument(format!("malformed {what} `{text}`: not issued by arbiter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        for revision in [0, 1, 42, u64::MAX] {
            let token = encode(Revision(revision));
            assert_eq!(decode(&token).ok(), Some(Revision(revision)));
        }
        for foreign in ["", "GhUKEzE3MDAwMDAwMDAwMDAwMDAwMDA=", "AQ", "!!"] {
            let token = pb::ZedToken {
                token: foreign.to_string(),
            };
            let err = decode(&token).err().map(|it| it.code());
            assert_eq!(err, Some(tonic::Code::InvalidArgument), "{foreign}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = encode_cursor(Revision(7), "doc:1#viewer@user:a");
        let (revision, position) = decode_cursor(&cursor).unwrap();
        assert_eq!(revision, Revision(7));
        assert_eq!(position, "doc:1#viewer@user:a");
        let token = pb::ZedToken {
            token: cursor.token,
        };
        assert!(decode(&token).is_err(), "a cursor is not a zedtoken");
    }
}
