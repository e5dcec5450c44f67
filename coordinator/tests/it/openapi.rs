//! The OpenAPI document against a real coordinator on 127.0.0.1: it is served, parses as
//! OpenAPI 3.1, describes exactly the routes the router is built from, and every operation it
//! describes is answered (not 404/405), refusing a caller without credentials exactly when the
//! document says it needs some.

use idlefarm_coordinator::server::api::{Verb, api_routes};
use idlefarm_coordinator::server::openapi::{documented, missing_from};
use idlefarm_protocol::routes;
use reqwest::{Method, StatusCode};
use utoipa::openapi::path::HttpMethod;

use crate::common::Farm;

/// `template` with every `{parameter}` set to `1`.
fn filled(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        out.push_str(&rest[..open]);
        out.push('1');
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

fn method(verb: Verb) -> (Method, HttpMethod) {
    match verb {
        Verb::Get => (Method::GET, HttpMethod::Get),
        Verb::Post => (Method::POST, HttpMethod::Post),
        Verb::Put => (Method::PUT, HttpMethod::Put),
        Verb::Patch => (Method::PATCH, HttpMethod::Patch),
        Verb::Delete => (Method::DELETE, HttpMethod::Delete),
    }
}

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_answers() {
    let farm = Farm::start(|_| {}).await;
    let http = reqwest::Client::new();
    let answer = http
        .get(format!("{}{}", farm.url, routes::OPENAPI))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let json: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(json["openapi"], "3.1.0");
    // Two readers that know OpenAPI 3.1: utoipa's own types (strict about the version) and
    // oas3's, written independently of the code that made the document.
    let doc: utoipa::openapi::OpenApi = serde_json::from_value(json.clone()).unwrap();
    let spec: oas3::Spec = serde_json::from_value(json.clone()).unwrap();
    assert!(
        spec.components
            .is_some_and(|c| c.schemas.contains_key("JobInfo"))
    );

    let served = api_routes();
    if let Some(mismatch) = missing_from(&served, &doc) {
        panic!("the router and the OpenAPI document disagree: {mismatch:?}");
    }
    assert!(served.len() >= 45, "{} routes", served.len());

    for (verb, path) in documented(&doc) {
        let (m, hm) = method(verb);
        let url = format!("{}{}", farm.url, filled(&path));
        let status = http.request(m, &url).send().await.unwrap().status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{verb} {path} is documented but answers {status}"
        );
        let op = doc.paths.get_path_operation(&path, hm).unwrap();
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        assert_eq!(
            status == StatusCode::UNAUTHORIZED,
            secured,
            "{verb} {path} answers {status} without credentials, but the document says it {} them",
            if secured { "needs" } else { "does not need" }
        );
    }
    // A route nobody serves says where the list is.
    let unknown = http
        .get(format!("{}/api/v1/jobs/1/explode", farm.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let said: serde_json::Value = unknown.json().await.unwrap();
    assert!(
        said["error"]
            .as_str()
            .unwrap_or("")
            .contains(routes::OPENAPI),
        "{said}"
    );
    farm.stop().await;
}
