//! Issue 15, the playground: the page and its assets are served from the binary, and the
//! sandbox evaluate route answers schema problems, checks with explanations, expand trees
//! and validation runs from what it is sent — never touching the server's own data, within
//! its limits, refusing what it does not understand.

mod support;

use std::path::Path;

use arbiter::server::ServerConfig;
use arbiter::server::playground::{MAX_RELATIONSHIPS, MAX_SCHEMA_BYTES};
use serde_json::{Value, json};
use support::assert_error;

fn models_zed() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/models.zed"))
        .unwrap()
}

fn models_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/models.yaml"))
        .unwrap()
}

const MODELS_RELATIONSHIPS: &str = "
    // A public model.
    model:public_llm#guest@user:*
    model:public_llm#contributor@user:dana
    model:private_cv#guest@user:frank
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_the_page_and_its_assets_come_from_the_binary() {
    let server = support::start_with_schema(ServerConfig {
        token: Some("secret".into()),
        ..ServerConfig::default()
    })
    .await;
    // The page is static: no token needed.
    for (path, content_type, needle) in [
        (
            "/playground",
            "text/html",
            "<label for=\"schema\">Schema</label>",
        ),
        (
            "/playground/app.js",
            "text/javascript",
            "/v1/playground/evaluate",
        ),
        ("/playground/style.css", "text/css", ".result"),
        (
            "/playground/example.json",
            "application/json",
            "model:public_llm",
        ),
    ] {
        let response = server
            .http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}"
        );
        let text = response.text().await.unwrap();
        assert!(text.contains(needle), "{path}");
        if path == "/playground" {
            let csp = headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("connect-src 'self'"), "{csp}");
            // Every asset the page loads is on this server.
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{text}"
            );
        }
    }
    // The evaluate route is a /v1 route: it needs the token when the server has one.
    let response = server
        .http
        .post(format!("{}/v1/playground/evaluate", server.url))
        .json(&json!({"action": "schema", "schema": "definition user {}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({"action": "schema", "schema": "definition user {}"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_schema_problems_come_with_line_and_column() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    let cases = [
        ("definition user {}", json!([])),
        (
            "definition user {}\ndefinition doc {\n    relation viewer: usr\n}",
            json!([{"line": 3, "column": 22, "message": "unknown type `usr`"}]),
        ),
    ];
    for (schema, want) in cases {
        let (status, body) = server
            .post(
                "/v1/playground/evaluate",
                json!({"action": "schema", "schema": schema}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["problems"], want, "{schema}");
    }
    server.stop().await;
}

async fn check(server: &support::TestServer, permission: &str, subject: &str) -> Value {
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({
                "action": "check",
                "schema": models_zed(),
                "relationships": MODELS_RELATIONSHIPS,
                "context": {},
                "resource": "model:public_llm",
                "permission": permission,
                "subject": subject,
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_a_guest_may_execute_a_public_model_but_not_edit_it() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    let body = check(&server, "execute", "user:stranger").await;
    assert_eq!(body["permissionship"], "has_permission");
    assert_eq!(body["allowed"], true);
    assert_eq!(body["explanation"]["result"], "has_permission");
    let text = body["explanation"].to_string();
    assert!(text.contains("model:public_llm#guest@user:*"), "{text}");

    let body = check(&server, "edit", "user:stranger").await;
    assert_eq!(body["permissionship"], "no_permission");
    assert_eq!(body["allowed"], false);
    let tree = &body["explanation"]["tree"];
    assert_eq!(tree["expression"], "contributor | project.contributor");
    assert_eq!(tree["children"][0]["relation"], "contributor");
    assert_eq!(tree["children"][0]["reason"], "no_relationship");
    assert_eq!(tree["children"][1]["reason"], "no_related_objects");

    // The sandbox is not the server: nothing was written there.
    let (status, body) = server
        .post(
            "/v1/relationships/read",
            json!({"filter": {"resource_type": "document"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["relationships"], json!([]));
    let (_, body) = server.get("/v1/schema").await;
    assert_eq!(body["schema"], support::SCHEMA);
    assert_eq!(server.state.engine().head().0, 1, "only the schema write");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_expand_draws_the_recursive_tree() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({
                "action": "expand",
                "schema": models_zed(),
                "relationships": MODELS_RELATIONSHIPS,
                "resource": "model:public_llm",
                "permission": "execute",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tree = &body["tree"];
    assert_eq!(tree["kind"], "union");
    assert_eq!(tree["children"][0]["relation"], "guest");
    assert_eq!(tree["children"][0]["subjects"], json!(["user:*"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_a_validation_file_runs_with_each_item_marked() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    // models.yaml names `schemaFile: ./models.zed`: it stands for the page's schema.
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({"action": "validate", "schema": models_zed(), "validation": models_yaml()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let validation = &body["validation"];
    assert_eq!(validation["passed"], true, "{body}");
    let items = validation["items"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|it| it["passed"] == true), "{body}");
    assert_eq!(items[0]["kind"], "assertTrue");
    assert_eq!(items[0]["text"], "model:public_llm#execute@user:stranger");

    // A wrong assertion fails alone, at its line, saying why.
    let wrong = models_yaml().replacen(
        "    - model:public_llm#edit@user:stranger",
        "    - model:public_llm#execute@user:dana\n    - model:public_llm#edit@user:stranger",
        1,
    );
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({"action": "validate", "schema": models_zed(), "validation": wrong}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let validation = &body["validation"];
    assert_eq!(validation["passed"], false, "{body}");
    let failed: Vec<&Value> = validation["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|it| it["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["kind"], "assertFalse");
    assert_eq!(failed[0]["text"], "model:public_llm#execute@user:dana");
    let message = failed[0]["messages"][0].as_str().unwrap();
    assert!(message.contains("answered allowed"), "{message}");

    // Without a schema, a schemaFile cannot be read from the server's disk.
    let (status, body) = server
        .post(
            "/v1/playground/evaluate",
            json!({"action": "validate", "validation": models_yaml()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["validation"]["passed"], false);
    let problem = body["validation"]["problems"][0]["message"]
        .as_str()
        .unwrap();
    assert!(problem.contains("models.zed"), "{problem}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue15_bad_input_is_refused_with_a_clear_error() {
    let server = support::start_with_schema(ServerConfig::default()).await;
    let zed = models_zed();
    let check = |extra: Value| {
        let mut body = json!({
            "action": "check",
            "schema": zed,
            "relationships": "",
            "resource": "model:m",
            "permission": "execute",
            "subject": "user:a",
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let huge_schema = format!(
        "definition user {{}}\n{}",
        "// x\n".repeat(MAX_SCHEMA_BYTES)
    );
    let many: String = (0..=MAX_RELATIONSHIPS)
        .map(|i| format!("model:m{i}#guest@user:u\n"))
        .collect();
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (
            json!({"action": "guess"}),
            "invalid_json",
            "",
            "unknown variant",
        ),
        (
            json!({"action": "schema", "schema": "", "extra": true}),
            "invalid_json",
            "",
            "unknown field `extra`",
        ),
        (
            check(json!({"relationships": "model:m#guest@user:a\nmodel:m#owner@user:b"})),
            "invalid_argument",
            "relationships",
            "line 2:",
        ),
        (
            check(json!({"relationships": "not a relationship"})),
            "invalid_argument",
            "relationships",
            "line 1:",
        ),
        (
            check(json!({"schema": "definition user {"})),
            "invalid_schema",
            "schema",
            "1:",
        ),
        (
            check(json!({"resource": "model"})),
            "invalid_argument",
            "resource",
            "",
        ),
        (
            check(json!({"permission": "fly"})),
            "invalid_argument",
            "permission",
            "`fly`",
        ),
        (
            json!({"action": "schema", "schema": huge_schema}),
            "invalid_argument",
            "schema",
            "at most",
        ),
        (
            check(json!({"relationships": many})),
            "invalid_argument",
            "relationships",
            "at most",
        ),
    ];
    for (body, code, field, needle) in cases {
        let (status, answer) = server.post("/v1/playground/evaluate", body).await;
        assert_error(status, &answer, 400, code);
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    assert_eq!(
        server.state.engine().head().0,
        1,
        "the server's data is untouched"
    );
    server.stop().await;
}
