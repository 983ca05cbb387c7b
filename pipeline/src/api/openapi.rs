//! The API's reference: an OpenAPI 3.1 document built from the same declarations that register
//! the routes (`utoipa-axum`), so a route cannot be served without being described; served at
//! `GET /api/openapi.json` without a key.

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessionflow",
        description = "Captures Claude Code sessions and turns their transcripts into queryable \
            data. Capture flow: `POST /api/events/ingest` a `session.start`, `POST \
            /api/sessions/{id}/transcript/upload` the transcript (with `?workspace_id=` while \
            the server does not know the session), `POST /api/events/ingest` a `session.end`; \
            the server parses, stores and summarizes it. Every route under `/api` needs \
            `Authorization: Bearer <key>`; errors answer `{\"error\": reason}`."
    ),
    modifiers(&Bearer),
    tags(
        (name = "capture", description = "Sending sessions: events, transcripts, their state"),
        (name = "sessions", description = "Reading sessions and their messages"),
        (name = "reports", description = "Usage and tools, brought up to date when asked"),
        (name = "operations", description = "Health, metrics, the monitor's snapshot, processors"),
        (name = "keys", description = "API keys: roles and the workspaces they cover (admin)"),
    )
)]
pub struct ApiDoc;

/// The bearer key every `/api` route takes.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub async fn openapi(Extension(document): Extension<Arc<Document>>) -> Json<Document> {
    Json(document.as_ref().clone())
}
