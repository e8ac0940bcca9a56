//! The two ticket examples of issue 16 stay true: the committed permissions files are what
//! the generator renders from `apps.json` (regenerate with `UPDATE_EXPECT=1`), every example
//! file loads and its own assertions hold, the broken one is refused with its line, and the
//! API-key-tier middleware lets through exactly what the tiers grant — failing closed for an
//! unknown key, an unknown tier and an unreachable arbiter.

#[path = "../examples/permissions-as-code/generate.rs"]
mod generate;
#[path = "../examples/api-key-tiers/middleware.rs"]
mod middleware;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arbiter::engine::{self, Arbiter};
use arbiter::server::ServerConfig;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use middleware::{Operation, Refusal, Tiers};
use tower::ServiceExt;

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

#[test]
fn issue16_permission_files_are_rendered_from_apps_json() {
    let apps = std::fs::read_to_string(example("permissions-as-code/apps.json")).unwrap();
    for environment in ["staging", "production"] {
        let rendered = generate::render(&apps, environment).unwrap();
        let committed = example(&format!(
            "permissions-as-code/permissions.{environment}.yaml"
        ));
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&committed, &rendered).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&committed).unwrap(),
            rendered,
            "{} is stale: run with UPDATE_EXPECT=1",
            committed.display()
        );
    }
    assert!(
        generate::render(&apps, "nowhere")
            .unwrap_err()
            .contains("`nowhere`")
    );
    assert!(generate::render("{", "staging").is_err());
}

#[test]
fn issue16_example_files_load_and_the_broken_one_names_its_line() {
    for file in [
        "permissions-as-code/permissions.staging.yaml",
        "permissions-as-code/permissions.production.yaml",
        "api-key-tiers/tiers.yaml",
    ] {
        if let Err(err) = arbiter::sync::read(&example(file)) {
            panic!("{file}: {err}");
        }
    }
    let broken = example("permissions-as-code/permissions.broken.yaml");
    let err = arbiter::sync::read(&broken).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:15: ", broken.display())) && err.contains("`raeder`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue16_tier_middleware_grants_exactly_the_tiers_and_fails_closed() {
    let engine = Arbiter::in_memory(engine::Config::default()).unwrap();
    let request = arbiter::sync::read(&example("api-key-tiers/tiers.yaml")).unwrap();
    engine.sync(&request, false).unwrap();
    let server = support::start(engine, ServerConfig::default()).await;
    let keys = std::fs::read_to_string(example("api-key-tiers/keys.json")).unwrap();
    let tiers = Arc::new(Tiers::new(&keys, &server.url, None).unwrap());

    use Operation::{Delete, Read, Write};
    let allowed = [
        ("sk-free-1", Read),
        ("sk-pro-1", Read),
        ("sk-pro-1", Write),
        ("sk-enterprise-1", Read),
        ("sk-enterprise-1", Write),
        ("sk-enterprise-1", Delete),
    ];
    for key in ["sk-free-1", "sk-pro-1", "sk-enterprise-1", "sk-legacy-1"] {
        for operation in [Read, Write, Delete] {
            let res = tiers.authorize(Some(key), operation).await;
            if allowed.contains(&(key, operation)) {
                assert_eq!(res, Ok(()), "{key} {operation:?}");
            } else {
                assert!(
                    matches!(res, Err(Refusal::Denied { .. })),
                    "{key} {operation:?}: {res:?}"
                );
            }
        }
    }
    assert_eq!(
        tiers.authorize(Some("sk-unknown"), Read).await,
        Err(Refusal::UnknownKey)
    );
    assert_eq!(tiers.authorize(None, Read).await, Err(Refusal::UnknownKey));

    // Through the whole app: methods map to operations, refusals to statuses.
    let app = middleware::app(Arc::clone(&tiers));
    for (method, key, status) in [
        (Method::GET, "sk-free-1", StatusCode::OK),
        (Method::PUT, "sk-free-1", StatusCode::FORBIDDEN),
        (Method::DELETE, "sk-pro-1", StatusCode::FORBIDDEN),
        (Method::DELETE, "sk-enterprise-1", StatusCode::OK),
        (Method::GET, "sk-legacy-1", StatusCode::FORBIDDEN),
        (Method::GET, "sk-unknown", StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri("/documents/7")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{method} {key}");
    }

    // arbiter unreachable: nothing gets through.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let orphaned = Tiers::new(&keys, &closed_url, None).unwrap();
    let res = orphaned.authorize(Some("sk-enterprise-1"), Read).await;
    assert!(matches!(res, Err(Refusal::Unavailable(_))), "{res:?}");
    // A key the arbiter does not accept: denied, not allowed.
    let wrong_token = Tiers::new(&keys, &server.url, Some("nope".to_string())).unwrap();
    server
        .state
        .keys()
        .replace(arbiter::server::keys::KeyRing::from_token("right"));
    let res = wrong_token.authorize(Some("sk-enterprise-1"), Read).await;
    assert!(matches!(res, Err(Refusal::Denied { .. })), "{res:?}");
    server.stop().await;
}
