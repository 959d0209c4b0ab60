//! Every route, in one list, and the layers around them: a `Host` check
//! (DNS-rebinding defence: a page on evil.example resolving to 127.0.0.1
//! must not reach us; it runs before CORS, so a preflight from such a page is
//! refused, not answered), CORS for the configured origins only, the bearer
//! token of a remote instance, a body limit, a request timeout, a panic
//! catcher that turns a handler panic into a 500 while the service stays up,
//! and a `{"detail"}` body for the framework's own bodiless errors (405, 408).

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use super::{ApiError, AppState, auth, chat, facts, filetree, health, metrics, page, search, sources};

/// Largest request body accepted (413 above it, from `ApiJson`).
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;
/// A request taking longer than this is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The application: routes plus layers.
pub fn router(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods(AllowMethods::list([Method::GET, Method::POST, Method::DELETE]))
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true);
    let routes = Router::new()
        .route("/", get(page::page))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi))
        .route("/index-chat-message", post(chat::index_chat_message))
        .route("/index-job-status/{job_id}", get(chat::job_status))
        .route("/chats/{project_id}/{chat_id}", delete(chat::delete_chat))
        .route("/search", post(search::search))
        .route("/sources", get(sources::list).post(sources::add))
        .route("/sources/{id}", delete(sources::delete))
        .route("/reindex", post(sources::reindex))
        .route("/sources/{id}/status", get(sources::status))
        .route("/sources/{id}/jobs", get(sources::jobs))
        .route("/sources/{id}/chunk-stats", get(sources::chunk_stats))
        .route("/filetree/{id}", get(filetree::tree))
        .route("/filetree/{id}/file", get(filetree::file))
        .route("/facts", get(facts::list).post(facts::add))
        .route("/facts/{id}", delete(facts::delete))
        .route("/search-facts", post(facts::search));
    #[cfg(test)]
    let routes = routes.route(
        "/__test/panic",
        get(|| async {
            if true {
                panic!("a handler bug");
            }
        }),
    );
    routes
        .fallback(|| async { ApiError::client(StatusCode::NOT_FOUND, "Not Found") })
        // Innermost first: the last layer added sees the request first.
        .layer(middleware::from_fn_with_state(state.clone(), wait_for_open))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(cors)
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::map_response(detail_for_bodiless_errors))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked; the service goes on");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                detail: "internal error; see the service log".into(),
            }
            .into_response()
        }))
        .with_state(state)
}

/// Whether `host` (a `Host` header value) names this service on loopback.
pub fn host_allowed(host: &str, configured_host: &str, port: u16) -> bool {
    let (name, host_port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && (n.ends_with(']') || !n.contains(':')) => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = host_port
        && p.parse::<u16>() != Ok(port)
    {
        return false;
    }
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    matches!(name.as_str(), "127.0.0.1" | "localhost" | "::1") || name == configured_host.to_ascii_lowercase()
}

/// Counts each request by its route template (not the raw path, so ids do
/// not explode the label set) and final status.
async fn count(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let resp = next.run(req).await;
    state.metrics.record(&route, resp.status().as_u16());
    resp
}

/// Routes answered from memory: they never wait for the database.
const NO_WAIT: &[&str] = &["/", "/health", "/metrics", "/openapi.json"];

/// `GET /openapi.json`: the OpenAPI document generated from the contract
/// types in `memory-api` (the original FastAPI service served one too).
/// Built once; it never changes while we run.
async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(memory_api::openapi_json).as_str();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

/// A data request that arrives while the database opens waits for it (at
/// most `ServicesCell::wait_limit`, 5 s) and then runs; only a longer open
/// answers 503 with `Retry-After: 1`.
async fn wait_for_open(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.services.get().is_none()
        && !NO_WAIT.contains(&req.uri().path())
        && state.services.wait().await.is_none()
    {
        let mut resp = super::starting().into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    next.run(req).await
}

/// One `Host` header naming this service: two are 400 (a proxy and we could
/// read different ones), none on HTTP/1.1 is 400 (RFC 9112 section 3.2); a
/// foreign name is 403, unless the instance serves other machines
/// (`--allow-remote`), whose clients name it by any address and whose
/// requests the bearer token guards instead.
async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return ApiError::client(StatusCode::BAD_REQUEST, "more than one Host header").into_response();
    }
    // An absolute-form target (`GET http://name/ HTTP/1.1`) names the host
    // too, and wins over the header (RFC 9112 section 3.2.2): check it alike.
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    if let Some(a) = &authority
        && !state.config.allow_remote
        && !host_allowed(a, &state.config.host, state.monitor.identity().port)
    {
        return ApiError::client(
            StatusCode::FORBIDDEN,
            "the request target names a host that is not a loopback name of this service (DNS rebinding protection)",
        )
        .into_response();
    }
    match first {
        None if req.version() == Version::HTTP_11 => {
            return ApiError::client(
                StatusCode::BAD_REQUEST,
                "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)",
            )
            .into_response();
        }
        None => {}
        Some(host) => {
            let ok = host.to_str().is_ok_and(|h| {
                state.config.allow_remote
                    || host_allowed(h, &state.config.host, state.monitor.identity().port)
            });
            if !ok {
                return ApiError::client(
                    StatusCode::FORBIDDEN,
                    "Host header is not a loopback name of this service (DNS rebinding protection)",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// Gives an error the framework answered without a body (405 for a method a
/// route lacks, 408 from the timeout) the `{"detail"}` every error has.
async fn detail_for_bodiless_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp.headers().contains_key(header::CONTENT_TYPE)
        || axum::body::HttpBody::size_hint(resp.body()).exact() != Some(0)
    {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "method not allowed here; this route accepts {}",
            parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("other methods")
        ),
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request took longer than {} s and was abandoned",
            REQUEST_TIMEOUT.as_secs()
        ),
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let body = ApiError::client(status, detail).into_response();
    let (body_parts, body) = body.into_parts();
    parts.headers.extend(body_parts.headers);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "127.0.0.1:5858",
            "localhost:5858",
            "[::1]:5858",
            "localhost",
            "LOCALHOST:5858",
            "127.0.0.1",
        ] {
            assert!(host_allowed(ok, "127.0.0.1", 5858), "{ok}");
        }
        for bad in [
            "evil.example:5858",
            "127.0.0.1:80",
            "evil.example",
            "[::1]:1",
            "127.0.0.1.evil:5858",
        ] {
            assert!(!host_allowed(bad, "127.0.0.1", 5858), "{bad}");
        }
    }
}
