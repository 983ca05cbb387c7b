//! API errors as responses: a status and `{"error": reason}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong API key (send Authorization: Bearer $SESSIONFLOW_API_KEY)")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is over the {0} byte limit")]
    TooLarge(usize),
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!("{self}");
        }
        let body = ErrorBody {
            error: match self {
                ApiError::Internal(_) => "internal error (the server's log says more)".to_owned(),
                _ => self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// Reads a JSON body, answering 413 over the limit and 400 with serde's reason otherwise.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, ApiError> {
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
