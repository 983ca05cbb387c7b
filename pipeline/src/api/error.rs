//! API errors as responses: a status and `{"error": reason}`.

use axum::Json;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong API key (send Authorization: Bearer $SESSIONFLOW_API_KEY)")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The session was deleted for good.
    #[error("{0}")]
    Gone(String),
    #[error("the request body is over the {0} byte limit")]
    TooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency cannot be reached: `what: detail`, logged whole, answered as `what` alone
    /// (a driver's error text can name hosts, users or queries).
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the server itself: logged whole, answered without its text.
    #[error("{0}")]
    Internal(String),
}

impl From<sessionflow_protocol::ids::IdError> for ApiError {
    fn from(e: sessionflow_protocol::ids::IdError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong, for a person.
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!("{self}");
        }
        let body = ErrorBody {
            error: match self {
                ApiError::Internal(_) => "internal error (the server's log says more)".to_owned(),
                ApiError::Unavailable(ref text) => format!(
                    "{}; retry later (the server's log says more)",
                    text.split_once(": ")
                        .map_or(text.as_str(), |(what, _)| what)
                ),
                _ => self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The media type a request declares (`type/subtype`, lower case, without parameters).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().unwrap_or("?");
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// A transcript upload is the file's bytes as they are: a form (`multipart/form-data`, what a
/// browser or `curl -F` sends) would store its envelope instead of the transcript, so it is
/// refused (415).
pub fn check_upload_type(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(kind) if kind.starts_with("multipart/") => {
            Err(ApiError::UnsupportedMediaType(format!(
                "content-type {kind} is a form, not a transcript: send the file's bytes as \
                 application/octet-stream (curl --data-binary @FILE)"
            )))
        }
        _ => Ok(()),
    }
}

/// Reads a JSON body, answering 415 when it is declared as something else, 413 over the limit
/// and 400 with serde's reason otherwise. A body without a content type is read as JSON.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<T, ApiError> {
    match media_type(headers) {
        Some(kind) if kind != "application/json" && !kind.ends_with("+json") => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content-type {kind} is not JSON: send application/json"
            )));
        }
        _ => {}
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit")
        {
            ApiError::TooLarge(limit)
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::ApiError;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn an_unreachable_dependency_is_named_without_its_error_text() {
        let response = ApiError::Unavailable(
            "database unavailable: error connecting to server at \"db.internal\" (10.0.0.5), \
             port 5432 failed: FATAL: password authentication failed for user \"app\""
                .into(),
        )
        .into_response();
        assert_eq!(response.status(), 503);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["error"],
            "database unavailable; retry later (the server's log says more)"
        );
    }
}
