//! The API described as OpenAPI 3 (`GET /api/v1/openapi.json`). Bodies and answers are the
//! protocol types' own schemas (`utoipa::ToSchema`, derived in `idlefarm-protocol` behind its
//! `openapi` feature); paths come from `idlefarm_protocol::routes`. What this module adds is
//! what a type cannot say: which operations exist, who may call them and what they answer.
//! [`missing_from`] compares the document with the router's table ([`super::api`]) so a route
//! cannot be served undocumented, nor documented unserved.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use idlefarm_protocol::accounts::{CSRF_HEADER, SESSION_COOKIE};
use idlefarm_protocol::{self as p, submit_fields};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathItem, Paths, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};

use super::api::Verb;

mod operations;
use operations::operations;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone (logging in, enrolling, this document).
    Public,
    /// A person: an API token (`Authorization: Bearer`) or a browser session cookie, which
    /// needs the session's CSRF token on every state-changing request.
    Person,
    /// An enrolled agent: `Authorization: Bearer <agent_id>.<secret>`.
    Agent,
}

/// What a request carries.
enum Body {
    None,
    Json(Box<RefOr<Schema>>),
    /// A multipart form with these (name, description) fields.
    Form(&'static [(&'static str, &'static str)]),
    /// Raw bytes of one of these types.
    Bytes(&'static [&'static str]),
}

/// What a successful request answers.
enum Answer {
    Json(Box<RefOr<Schema>>),
    /// `{}`: done, nothing to say.
    Done,
    /// A file of one of these types.
    File(&'static [&'static str]),
    /// Server-Sent Events whose `data:` lines are this schema.
    Events(Box<RefOr<Schema>>),
}

impl Body {
    fn json(schema: RefOr<Schema>) -> Body {
        Body::Json(Box::new(schema))
    }
}

impl Answer {
    fn json(schema: RefOr<Schema>) -> Answer {
        Answer::Json(Box::new(schema))
    }

    fn events(schema: RefOr<Schema>) -> Answer {
        Answer::Events(Box::new(schema))
    }
}

/// One documented operation.
struct Op {
    verb: Verb,
    path: String,
    summary: &'static str,
    auth: Auth,
    body: Body,
    answer: Answer,
    status: &'static str,
    /// `(name, description, schema)` of query parameters.
    query: Vec<(&'static str, &'static str, Type)>,
    /// Path parameters that are text rather than the usual integer id.
    text_params: &'static [&'static str],
}

fn op(verb: Verb, path: impl Into<String>, summary: &'static str, auth: Auth) -> Op {
    Op {
        verb,
        path: path.into(),
        summary,
        auth,
        body: Body::None,
        answer: Answer::Done,
        status: "200",
        query: Vec::new(),
        text_params: &[],
    }
}

impl Op {
    fn body(mut self, body: Body) -> Op {
        self.body = body;
        self
    }
    fn answer(mut self, answer: Answer) -> Op {
        self.answer = answer;
        self
    }
    fn created(mut self) -> Op {
        self.status = "201";
        self
    }
    fn query(mut self, name: &'static str, description: &'static str, kind: Type) -> Op {
        self.query.push((name, description, kind));
        self
    }
    fn text(mut self, params: &'static [&'static str]) -> Op {
        self.text_params = params;
        self
    }
}

/// The schemas the document refers to, collected as operations name them.
#[derive(Default)]
struct Schemas(Vec<(String, RefOr<Schema>)>);

impl Schemas {
    /// A reference to `T`'s schema, which (with every schema it refers to) joins the
    /// document's components.
    fn of<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.0.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.0);
        Ref::from_schema_name(T::name()).into()
    }

    /// A reference to a list of `T`.
    fn list<T: ToSchema>(&mut self) -> RefOr<Schema> {
        ArrayBuilder::new().items(self.of::<T>()).into()
    }
}

/// The names of a path template's `{parameters}`.
fn path_params(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

fn http_method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Put => HttpMethod::Put,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// Names of the security schemes.
const API_TOKEN: &str = "api_token";
const SESSION: &str = "session";
const CSRF: &str = "csrf";
const AGENT_SECRET: &str = "agent_secret";

fn security(auth: Auth, verb: Verb) -> Vec<SecurityRequirement> {
    let none: [&str; 0] = [];
    match auth {
        Auth::Public => Vec::new(),
        Auth::Agent => vec![SecurityRequirement::new(AGENT_SECRET, none)],
        Auth::Person => {
            let session = SecurityRequirement::new(SESSION, none);
            let session = match verb {
                Verb::Get => session,
                _ => session.add(CSRF, none),
            };
            vec![SecurityRequirement::new(API_TOKEN, none), session]
        }
    }
}

fn content_for(types: &[&str], schema: impl Fn() -> RefOr<Schema>) -> Vec<(String, Content)> {
    types
        .iter()
        .map(|t| (t.to_string(), Content::new(Some(schema()))))
        .collect()
}

fn binary() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/octet-stream")
        .into()
}

fn operation(op: Op, error: &RefOr<Schema>) -> utoipa::openapi::path::Operation {
    let mut b = OperationBuilder::new()
        .summary(Some(op.summary))
        .operation_id(Some(format!("{} {}", op.verb, op.path)))
        .securities(Some(security(op.auth, op.verb)));
    for name in path_params(&op.path) {
        let kind = if op.text_params.contains(&name) {
            Type::String
        } else {
            Type::Integer
        };
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(kind))),
        );
    }
    for (name, description, kind) in op.query {
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(kind))),
        );
    }
    let body = match op.body {
        Body::None => None,
        Body::Json(schema) => Some(content_for(&["application/json"], || *schema.clone())),
        Body::Form(fields) => {
            let mut form = ObjectBuilder::new();
            for (name, description) in fields {
                let field = if [submit_fields::FILE, submit_fields::INI].contains(name) {
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/octet-stream")
                } else {
                    ObjectBuilder::new().schema_type(Type::String)
                };
                form = form.property(*name, field.description(Some(*description)));
            }
            let form: RefOr<Schema> = form.into();
            Some(content_for(&["multipart/form-data"], || form.clone()))
        }
        Body::Bytes(types) => Some(content_for(types, binary)),
    };
    if let Some(contents) = body {
        let mut rb = RequestBodyBuilder::new().required(Some(Required::True));
        for (t, c) in contents {
            rb = rb.content(t, c);
        }
        b = b.request_body(Some(rb.build()));
    }
    let ok = match op.answer {
        Answer::Json(schema) => ResponseBuilder::new()
            .description("done")
            .content("application/json", Content::new(Some(*schema))),
        Answer::Done => ResponseBuilder::new()
            .description("done: `{}`")
            .content("application/json", Content::new(Some(ObjectBuilder::new()))),
        Answer::File(types) => {
            let mut r = ResponseBuilder::new().description("the file (`ETag`, `If-None-Match`)");
            for (t, c) in content_for(types, binary) {
                r = r.content(t, c);
            }
            r
        }
        Answer::Events(schema) => ResponseBuilder::new()
            .description("an endless Server-Sent Events stream; each `data:` line is this JSON")
            .content("text/event-stream", Content::new(Some(*schema))),
    };
    let failed = ResponseBuilder::new()
        .description("an error a person can act on: `{ \"error\": ..., \"field\"?: ... }`")
        .content("application/json", Content::new(Some(error.clone())));
    b.response(op.status, ok)
        .response("default", failed)
        .build()
}

fn security_schemes(c: ComponentsBuilder) -> ComponentsBuilder {
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    c.security_scheme(
        API_TOKEN,
        bearer("an API token from `POST /api/v1/tokens` (what `idlefarm login` saves)"),
    )
    .security_scheme(
        AGENT_SECRET,
        bearer("`<agent_id>.<secret>` from `POST /api/v1/agents/register`"),
    )
    .security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            SESSION_COOKIE,
            "the browser session from `POST /api/v1/session`",
        ))),
    )
    .security_scheme(
        CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            CSRF_HEADER,
            "the session's `csrf_token`: every state-changing request with a session cookie needs it",
        ))),
    )
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut schemas = Schemas::default();
    let error = schemas.of::<p::ErrorBody>();
    let mut paths = Paths::new();
    for op in operations(&mut schemas) {
        let path = op.path.clone();
        let verb = op.verb;
        let item = PathItem::new(http_method(verb), operation(op, &error));
        match paths.paths.get_mut(&path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                paths.paths.insert(path, item);
            }
        }
    }
    let components = security_schemes(ComponentsBuilder::new().schemas_from_iter(schemas.0));
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("idlefarm coordinator API")
                .version(format!("{}", p::API_VERSION))
                .description(Some(
                    "Errors answer `{ \"error\": \"...\" }`, with `field` naming the form \
                     field concerned when there is one.",
                )),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// Every (method, path) the document describes.
pub fn documented(doc: &OpenApi) -> BTreeSet<(Verb, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            (Verb::Get, &item.get),
            (Verb::Post, &item.post),
            (Verb::Put, &item.put),
            (Verb::Patch, &item.patch),
            (Verb::Delete, &item.delete),
        ];
        for (verb, op) in ops {
            if op.is_some() {
                out.insert((verb, path.clone()));
            }
        }
    }
    out
}

/// Where the router's routes and the document disagree.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mismatch {
    /// Served but not documented.
    pub undocumented: Vec<(Verb, String)>,
    /// Documented but not served.
    pub unserved: Vec<(Verb, String)>,
}

/// Compares the routes the router serves with those the document describes; `None` when they
/// agree.
pub fn missing_from(served: &[(Verb, String)], doc: &OpenApi) -> Option<Mismatch> {
    let served: BTreeSet<(Verb, String)> = served.iter().cloned().collect();
    let documented = documented(doc);
    let mismatch = Mismatch {
        undocumented: served.difference(&documented).cloned().collect(),
        unserved: documented.difference(&served).cloned().collect(),
    };
    (mismatch != Mismatch::default()).then_some(mismatch)
}

/// `GET /api/v1/openapi.json`: built once, on first request.
pub async fn serve() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| document().to_json().unwrap_or_else(|e| format!("{e}")));
    ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use idlefarm_protocol::routes;

    use super::*;
    use crate::server::api::api_routes;

    #[test]
    fn the_document_describes_exactly_the_routes_the_router_serves() {
        assert_eq!(missing_from(&api_routes(), &document()), None);
    }

    #[test]
    fn path_parameters_are_read_from_templates() {
        assert_eq!(path_params(routes::JOB_FRAME_FILE), vec!["id", "name"]);
        assert_eq!(path_params(routes::JOBS), Vec::<&str>::new());
    }

    #[test]
    fn a_route_missing_from_either_side_is_found() {
        let doc = document();
        let mut served: Vec<(Verb, String)> = documented(&doc).into_iter().collect();
        assert_eq!(missing_from(&served, &doc), None);
        served.push((Verb::Post, "/api/v1/jobs/{id}/explode".into()));
        let removed = served.remove(0);
        let mismatch = missing_from(&served, &doc).expect("a mismatch");
        assert_eq!(
            mismatch.undocumented,
            vec![(Verb::Post, "/api/v1/jobs/{id}/explode".to_owned())]
        );
        assert_eq!(mismatch.unserved, vec![removed]);
    }

    #[test]
    fn the_same_path_keeps_every_method() {
        let doc = document();
        let job = doc.paths.paths.get(routes::JOB).expect("documented");
        assert!(job.get.is_some() && job.delete.is_some());
    }
}
