//! `POST /v1/relationships/import`: bulk load from a streamed NDJSON body, all or nothing.
//!
//! Each non-blank line is `{"relationship": "resource#relation@subject"}` (the text form,
//! caveat and expiration suffixes included; no other field). The body is read as it
//! arrives and every line is parsed and validated against the schema before anything is
//! written: the first bad line answers 400 naming its line number, and nothing is
//! imported. Only then does the engine import the whole set (touch semantics, committed in
//! chunks of consecutive revisions, as `arbiter import` does).
//!
//! Bounds: the body may hold at most `--max-import-bytes` (413 past it) and must arrive
//! within `--body-timeout-ms`; the import itself is not cut off by the request deadline
//! (a deadline could only answer 503 while the import went on committing), it runs until
//! done. A schema change racing the import can fail it part-way; the error says so.

use axum::body::Body as RawBody;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::handlers::Answer;
use crate::model::Relationship;

/// The route, also exempt from the request deadline (see the module doc).
pub const PATH: &str = "/v1/relationships/import";

/// One line of the body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportLine {
    /// `resource#relation@subject`, such as `document:1#viewer@user:alice`.
    pub relationship: String,
}

/// What an import did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportAnswer {
    /// The revision of the last chunk committed (the head when nothing was new).
    pub revision: u64,
    /// How many relationships the body held.
    pub relationships: u64,
}

/// Bulk-load relationships from NDJSON, all or nothing.
#[utoipa::path(post, path = "/v1/relationships/import", tag = "relationships",
    request_body(content = ImportLine, content_type = "application/x-ndjson",
        description = "one `ImportLine` object per line"),
    responses(
        (status = 200, body = ImportAnswer),
        (status = 400, description = "a bad line (named by its number); nothing imported", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 408, description = "the body did not arrive in time; nothing imported", body = ErrorBody),
        (status = 413, description = "the body is larger than `--max-import-bytes`; nothing imported", body = ErrorBody),
        (status = 415, description = "the body is not `application/x-ndjson`", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Answer<ImportAnswer>, ApiError> {
    require_ndjson(&headers)?;
    let engine = state.engine().clone();
    engine.require_schema()?;
    let limit = state.config().import_limit;
    let timeout = state.config().body_timeout;
    let relationships = tokio::time::timeout(
        timeout,
        read_lines(body, limit, |line, text| {
            let relationship = parse_line(line, text)?;
            engine
                .admit(&relationship)
                .map_err(|err| line_error(line, &err.to_string()))?;
            Ok(relationship)
        }),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout(timeout.as_millis()))??;
    let count = relationships.len() as u64;
    let revision =
        tokio::task::spawn_blocking(move || engine.import(&mut relationships.into_iter()))
            .await
            .map_err(|err| ApiError::Internal(err.to_string()))??;
    Ok(Answer(
        revision,
        ImportAnswer {
            revision: revision.0,
            relationships: count,
        },
    ))
}

/// The body must say it is NDJSON: a JSON document sent here by mistake would otherwise
/// be read as one line.
fn require_ndjson(headers: &HeaderMap) -> Result<(), ApiError> {
    let kind = headers
        .get(CONTENT_TYPE)
        .and_then(|it| it.to_str().ok())
        .and_then(|it| it.split(';').next())
        .map(str::trim);
    match kind {
        Some("application/x-ndjson" | "application/jsonl") => Ok(()),
        other => Err(ApiError::Protocol {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "the import body must be `application/x-ndjson`, got `{}`",
                super::clip::clip(other.unwrap_or("none"))
            ),
        }),
    }
}

/// Reads `body` line by line as it arrives, at most `limit` bytes, handing each non-blank
/// line (numbered from 1) to `accept`; the first refusal ends the read.
async fn read_lines<T>(
    body: RawBody,
    limit: usize,
    mut accept: impl FnMut(usize, &[u8]) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    let (mut seen, mut line) = (0usize, 0usize);
    let mut out = Vec::new();
    let mut take = |text: &[u8], line: usize| -> Result<(), ApiError> {
        if !text.iter().all(u8::is_ascii_whitespace) {
            out.push(accept(line, text)?);
        }
        Ok(())
    };
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::BadJson(format!("cannot read the body: {err}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            line += 1;
            take(&pending[start..start + end], line)?;
            start += end + 1;
        }
        pending.drain(..start);
    }
    line += 1;
    take(&pending, line)?;
    Ok(out)
}

fn parse_line(line: usize, text: &[u8]) -> Result<Relationship, ApiError> {
    let parsed: ImportLine = serde_json::from_slice(text)
        .map_err(|err| line_error(line, &format!("invalid json: {err}")))?;
    parsed
        .relationship
        .parse::<Relationship>()
        .map_err(|err| line_error(line, &err.to_string()))
}

fn line_error(line: usize, message: &str) -> ApiError {
    ApiError::bad_request(
        "relationship",
        format!(
            "line {line}: {}; nothing was imported",
            super::clip::clip(message)
        ),
    )
}

/// Whether `path` is the import route, which the request deadline leaves alone (see the
/// module doc).
pub fn is_import(path: &str) -> bool {
    path == PATH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: &'static str, limit: usize) -> Result<Vec<(usize, String)>, ApiError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(read_lines(RawBody::from(body), limit, |line, text| {
            Ok((line, String::from_utf8_lossy(text).into_owned()))
        }))
    }

    #[test]
    fn lines_are_numbered_from_one_and_blank_ones_skipped() {
        let got = lines("a\n\n  \nb\r\nc", 1 << 20).expect("read");
        assert_eq!(
            got,
            vec![(1, "a".into()), (4, "b\r".into()), (5, "c".into())]
        );
    }

    #[test]
    fn a_body_past_the_limit_is_refused() {
        assert!(matches!(
            lines("0123456789\n0123456789\n", 15),
            Err(ApiError::PayloadTooLarge(15))
        ));
    }

    #[test]
    fn a_line_names_its_number_in_the_error() {
        let err = parse_line(7, br#"{"relationship": "doc:1#viewer@user:a", "extra": 1}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("line 7: invalid json"), "{err}");
        let err = parse_line(3, br#"{"relationship": "doc:1#viewer"}"#).expect_err("bad text");
        assert!(err.to_string().contains("line 3:"), "{err}");
        let ok = parse_line(1, br#"{"relationship": "doc:1#viewer@user:a"}"#).expect("valid");
        assert_eq!(ok.to_string(), "doc:1#viewer@user:a");
    }

    #[test]
    fn only_ndjson_is_accepted() {
        let mut headers = HeaderMap::new();
        assert!(require_ndjson(&headers).is_err());
        headers.insert(CONTENT_TYPE, "application/json".parse().expect("header"));
        assert!(require_ndjson(&headers).is_err());
        headers.insert(
            CONTENT_TYPE,
            "application/x-ndjson; charset=utf-8"
                .parse()
                .expect("header"),
        );
        assert!(require_ndjson(&headers).is_ok());
    }

    #[test]
    fn the_import_route_is_recognised() {
        assert!(is_import(PATH));
        assert!(!is_import("/v1/relationships/write"));
    }
}
