//! `GET /health`: identity and state from memory. No database, no lock, no
//! blocking call: it must answer in milliseconds under any load, because
//! ChatDO gives it one second before showing the user an error.

use axum::Json;
use axum::extract::State;

use super::AppState;
use memory_api::HealthReport;

/// The health handler.
pub async fn health(State(state): State<AppState>) -> Json<HealthReport> {
    Json(state.monitor.report_now())
}
