//! `GET /metrics`: OpenMetrics text (see [`crate::metrics`]), built from
//! in-memory counters only, so a scrape never waits on the database.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// The metrics handler.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store().ok().map(|s| s.stats());
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state
            .metrics
            .render(&state.monitor, store.as_ref(), &state.monitor.semantic()),
    )
}
