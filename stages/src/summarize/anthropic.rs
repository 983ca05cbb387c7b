//! Summaries from the Anthropic Messages API: a 1–3 sentence, past-tense summary of a rendering
//! of the transcript cut to fit. A 429 is handed back with its `retry-after` so the retry sweep
//! can come back then; 529 and 5xx are retried here with exponential back-off.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{Summarizer, SummaryError, render};
use crate::transcript::ParsedTranscript;

const PROMPT: &str = "Below is a Claude Code session: what the user asked, the tools the \
assistant used and what it said. Summarize the session in one to three sentences, in the past \
tense: what was asked, what was done, how it ended. Answer with the summary only.";

/// Characters of transcript rendering sent with the prompt.
const RENDER_LIMIT: usize = 60_000;

#[derive(Debug, Clone)]
pub struct AnthropicConfig {
    pub api_key: String,
    /// `SUMMARY_MODEL`.
    pub model: String,
    /// The API's base URL (tests point it at a local stub).
    pub base_url: String,
    pub timeout: Duration,
    /// Attempts for 529 and 5xx answers, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each one after.
    pub backoff: Duration,
}

impl AnthropicConfig {
    pub fn new(api_key: String, model: Option<String>) -> Self {
        AnthropicConfig {
            api_key,
            model: model.unwrap_or_else(|| "claude-haiku-4-5".to_owned()),
            base_url: "https://api.anthropic.com".to_owned(),
            timeout: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_secs(2),
        }
    }
}

pub struct AnthropicSummarizer {
    config: AnthropicConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Reply {
    content: Vec<ReplyBlock>,
}

#[derive(Deserialize)]
struct ReplyBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

impl AnthropicSummarizer {
    pub fn new(config: AnthropicConfig) -> Result<Self, SummaryError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SummaryError::Transport(e.to_string()))?;
        Ok(AnthropicSummarizer { config, http })
    }

    async fn ask(&self, parsed: &ParsedTranscript) -> Result<String, SummaryError> {
        let body = json!({
            "model": self.config.model,
            "max_tokens": 300,
            "messages": [{
                "role": "user",
                "content": format!("{PROMPT}\n\n<session>\n{}\n</session>", render(parsed, RENDER_LIMIT)),
            }],
        });
        let url = format!("{}/v1/messages", self.config.base_url.trim_end_matches('/'));
        let mut wait = self.config.backoff;
        let mut attempt = 1;
        loop {
            let response = self
                .http
                .post(&url)
                .header("x-api-key", &self.config.api_key)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
                .map_err(|e| SummaryError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            if status == 429 {
                let retry_after = retry_after(response.headers());
                return Err(SummaryError::RateLimited { retry_after });
            }
            if status == 529 || (500..600).contains(&status) {
                if attempt >= self.config.attempts {
                    return Err(SummaryError::Unavailable {
                        status,
                        attempts: attempt,
                    });
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
                continue;
            }
            let text = response
                .text()
                .await
                .map_err(|e| SummaryError::Transport(e.to_string()))?;
            if !(200..300).contains(&status) {
                return Err(SummaryError::Rejected {
                    status,
                    body: text.chars().take(500).collect(),
                });
            }
            let reply: Reply = serde_json::from_str(&text).map_err(|e| {
                SummaryError::Invalid(format!(
                    "{e}: {}",
                    text.chars().take(200).collect::<String>()
                ))
            })?;
            let summary: Vec<&str> = reply
                .content
                .iter()
                .filter(|b| b.kind == "text")
                .map(|b| b.text.trim())
                .filter(|t| !t.is_empty())
                .collect();
            if summary.is_empty() {
                return Err(SummaryError::Invalid("no text in the reply".to_owned()));
            }
            return Ok(summary.join(" "));
        }
    }
}

impl Summarizer for AnthropicSummarizer {
    fn summarize<'a>(
        &'a self,
        parsed: &'a ParsedTranscript,
    ) -> BoxFuture<'a, Result<String, SummaryError>> {
        self.ask(parsed).boxed()
    }

    fn name(&self) -> &'static str {
        "anthropic"
    }
}

/// A response's `Retry-After` in seconds, if it gives one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
