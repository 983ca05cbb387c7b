//! The summarizers. The Anthropic one talks HTTP to a local stub server that answers as the
//! Messages API does: success, 429 with retry-after, 529, and garbage.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sessionflow_stages::summarize::{
    AnthropicConfig, AnthropicSummarizer, ExtractiveSummarizer, Summarizer, SummaryError,
};
use sessionflow_stages::transcript::{ParseOptions, ParsedTranscript, parse_bytes};

#[derive(Clone)]
struct Answer {
    status: u16,
    retry_after: Option<&'static str>,
    body: &'static str,
    delay: Duration,
}

fn answer(status: u16, body: &'static str) -> Answer {
    Answer {
        status,
        retry_after: None,
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Clone, Default)]
struct Stub {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
}

async fn messages(State(stub): State<Stub>, headers: HeaderMap, body: String) -> Response {
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    stub.requests.lock().unwrap().push((headers, json));
    let next = stub.answers.lock().unwrap().pop_front();
    let Some(a) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "stub ran out of answers").into_response();
    };
    tokio::time::sleep(a.delay).await;
    let mut response = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
    if let Some(after) = a.retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

async fn serve(answers: Vec<Answer>) -> (Stub, String) {
    let stub = Stub::default();
    stub.answers.lock().unwrap().extend(answers);
    let app = Router::new()
        .route("/v1/messages", post(messages))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (stub, url)
}

fn summarizer(url: &str) -> AnthropicSummarizer {
    let mut config = AnthropicConfig::new("test-key".into(), Some("claude-haiku-4-5".into()));
    config.base_url = url.to_owned();
    config.backoff = Duration::from_millis(10);
    config.timeout = Duration::from_millis(500);
    AnthropicSummarizer::new(config).unwrap()
}

fn transcript() -> ParsedTranscript {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/transcripts/cc2.1.14-headless-hello-world-script.jsonl");
    parse_bytes(&std::fs::read(path).unwrap(), &ParseOptions::default())
}

const OK: &str = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"The user asked for a hello.sh script; Claude wrote and ran it."}],"model":"claude-haiku-4-5","stop_reason":"end_turn","usage":{"input_tokens":900,"output_tokens":20}}"#;

#[tokio::test]
async fn a_success_returns_the_summary_and_sends_a_proper_request() {
    let (stub, url) = serve(vec![answer(200, OK)]).await;
    let summary = summarizer(&url).summarize(&transcript()).await.unwrap();
    assert_eq!(
        summary,
        "The user asked for a hello.sh script; Claude wrote and ran it."
    );
    let requests = stub.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(headers["x-api-key"], "test-key");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["model"], "claude-haiku-4-5");
    let prompt = body["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("past tense"));
    assert!(
        prompt.contains("User: Write a shell script called hello.sh"),
        "{prompt}"
    );
}

#[tokio::test]
async fn a_429_is_handed_back_with_its_retry_after_and_not_retried() {
    let mut limited = answer(
        429,
        r#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
    );
    limited.retry_after = Some("42");
    let (stub, url) = serve(vec![limited, answer(200, OK)]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(42)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the summary API is rate limiting us (retry after 42s)"
    );
    assert_eq!(
        stub.requests.lock().unwrap().len(),
        1,
        "deferred to the retry sweep"
    );
}

#[tokio::test]
async fn overloaded_answers_are_retried_with_back_off() {
    let overloaded = answer(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
    );
    let (stub, url) = serve(vec![
        overloaded.clone(),
        answer(503, "unavailable"),
        answer(200, OK),
    ])
    .await;
    let summary = summarizer(&url).summarize(&transcript()).await.unwrap();
    assert!(summary.starts_with("The user asked"));
    assert_eq!(stub.requests.lock().unwrap().len(), 3);

    let (stub, url) = serve(vec![overloaded.clone(), overloaded.clone(), overloaded]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SummaryError::Unavailable {
                status: 529,
                attempts: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(stub.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn garbage_refusals_and_silence_are_errors_not_summaries() {
    let (_, url) = serve(vec![answer(200, "<html>surprise</html>")]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(matches!(err, SummaryError::Invalid(_)), "{err:?}");

    let (_, url) = serve(vec![answer(200, r#"{"content":[]}"#)]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(matches!(err, SummaryError::Invalid(_)), "{err:?}");

    let (_, url) = serve(vec![answer(400, r#"{"error":"bad model"}"#)]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Rejected { status: 400, .. }),
        "{err:?}"
    );

    let mut slow = answer(200, OK);
    slow.delay = Duration::from_secs(3);
    let (_, url) = serve(vec![slow]).await;
    let err = summarizer(&url).summarize(&transcript()).await.unwrap_err();
    assert!(
        matches!(err, SummaryError::Transport(_)),
        "timeout: {err:?}"
    );
}

#[tokio::test]
async fn the_extractive_summary_needs_no_network_and_is_deterministic() {
    let parsed = transcript();
    let first = ExtractiveSummarizer.summarize(&parsed).await.unwrap();
    assert_eq!(
        first,
        ExtractiveSummarizer.summarize(&parsed).await.unwrap()
    );
    assert!(
        first.starts_with(
            "Asked: Write a shell script called hello.sh that prints \"Hello world\" and run it."
        ),
        "{first}"
    );
    assert!(
        first.contains("Used Bash ×1, Write ×1 on 1 file (hello.sh)."),
        "{first}"
    );
    assert!(
        first.matches(". ").count() <= 2,
        "at most three sentences: {first}"
    );
}
