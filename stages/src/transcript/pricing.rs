//! What tokens cost: a dated per-model price table embedded in the binary (`pricing.json`
//! beside this file), which a JSON file of the same shape can extend or override.
//!
//! Prices are per million tokens for input, output, cache writes (5-minute and 1-hour) and cache
//! reads. The table is generated from LiteLLM's public price list by `scripts/update-prices.sh`,
//! each model naming its source. A model the table lacks but whose family it knows (a new
//! `claude-opus-…`, say) is priced at that family's newest rates and reported as estimated; a
//! model of no known family is unpriced: callers get `None`, never a silent zero.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::model::TokenUsage;

const EMBEDDED: &str = include_str!("pricing.json");

/// Prompts above this many tokens are billed at a model's long-context rates, when it has them.
pub const LONG_CONTEXT_THRESHOLD: u64 = 200_000;

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read pricing file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("pricing file {path} is not a valid price table: {source}")]
    Invalid {
        path: String,
        source: serde_json::Error,
    },
}

/// Rates in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
}

impl Rates {
    fn cost(&self, usage: &TokenUsage) -> f64 {
        let cache_1h = usage
            .cache_creation_1h_tokens
            .min(usage.cache_creation_input_tokens);
        let cache_5m = usage.cache_creation_input_tokens - cache_1h;
        (usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + cache_5m as f64 * self.cache_write_5m
            + cache_1h as f64 * self.cache_write_1h
            + usage.cache_read_input_tokens as f64 * self.cache_read)
            / 1_000_000.0
    }
}

/// A model's prices: its base rates and, for models with a long-context tier, the rates for a
/// request whose prompt exceeds [`LONG_CONTEXT_THRESHOLD`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    #[serde(flatten)]
    pub base: Rates,
    #[serde(default)]
    pub above_200k: Option<Rates>,
}

impl ModelPrice {
    /// The cost of one API response.
    pub fn cost(&self, usage: &TokenUsage) -> f64 {
        let prompt =
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;
        match self.above_200k {
            Some(long) if prompt > LONG_CONTEXT_THRESHOLD => long.cost(usage),
            _ => self.base.cost(usage),
        }
    }
}

#[derive(Deserialize)]
struct PricingFile {
    as_of: Option<String>,
    models: HashMap<String, ModelPrice>,
}

/// Per-model prices, looked up by model name.
#[derive(Debug, Clone, PartialEq)]
pub struct PricingTable {
    /// The date the prices were taken; an override file may set its own.
    pub as_of: String,
    models: HashMap<String, ModelPrice>,
}

impl PricingTable {
    /// The table compiled into the binary.
    pub fn embedded() -> &'static PricingTable {
        static TABLE: OnceLock<PricingTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            Self::from_json(EMBEDDED.as_bytes(), "embedded pricing.json")
                .expect("the embedded pricing.json is valid: a unit test parses it")
        })
    }

    fn from_json(bytes: &[u8], origin: &str) -> Result<Self, PricingError> {
        let file: PricingFile =
            serde_json::from_slice(bytes).map_err(|source| PricingError::Invalid {
                path: origin.to_owned(),
                source,
            })?;
        Ok(PricingTable {
            as_of: file.as_of.unwrap_or_default(),
            models: file.models,
        })
    }

    /// The embedded table with the models of the JSON file at `path` added or replaced.
    pub fn embedded_with_overrides(path: &Path) -> Result<Self, PricingError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| PricingError::Read {
            path: shown.clone(),
            source,
        })?;
        let overrides = Self::from_json(&bytes, &shown)?;
        let mut table = Self::embedded().clone();
        table.models.extend(overrides.models);
        if !overrides.as_of.is_empty() {
            table.as_of = overrides.as_of;
        }
        Ok(table)
    }

    /// The prices of `model`: by its exact name, else without a provider prefix (`anthropic/`,
    /// `us.anthropic.`), a Bedrock version suffix (`-v1:0`) or a Vertex or dated release suffix
    /// (`@20250514`, `-20250514`), else — estimated — its family's newest.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.resolve(model).map(|(price, _)| price)
    }

    /// Whether `model` is priced only by its family's newest rates (shown as `≈`).
    pub fn is_estimated(&self, model: &str) -> bool {
        matches!(self.resolve(model), Some((_, true)))
    }

    /// The price of `model` and whether it is a family estimate (look a model up once and
    /// price each of its responses with what this returns).
    pub fn resolve(&self, model: &str) -> Option<(&ModelPrice, bool)> {
        if let Some(price) = self.models.get(model) {
            return Some((price, false));
        }
        let mut name = model;
        if let Some(at) = name.find("claude-") {
            name = &name[at..];
        }
        if let Some(at) = name.rfind("-v")
            && is_version_suffix(&name[at + 2..])
        {
            name = &name[..at];
        }
        if let Some(at) = name.rfind('@') {
            name = &name[..at];
        }
        if let Some(price) = self.models.get(name) {
            return Some((price, false));
        }
        let undated = strip_date(name);
        if let Some(price) = self.models.get(undated) {
            return Some((price, false));
        }
        let (family, _) = family_version(undated)?;
        self.models
            .iter()
            .filter_map(|(known, price)| {
                let (known_family, version) = family_version(known)?;
                (known_family == family).then_some((version, price))
            })
            .max_by_key(|(version, _)| *version)
            .map(|(_, price)| (price, true))
    }

    /// The cost of one response of `model`, or `None` when the model is unpriced.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Option<f64> {
        self.lookup(model).map(|price| price.cost(usage))
    }
}

fn is_version_suffix(s: &str) -> bool {
    let mut parts = s.split(':');
    matches!((parts.next(), parts.next(), parts.next()),
        (Some(major), Some(minor), None)
            if !major.is_empty() && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit()))
}

/// A Claude model's family and version: `claude-opus-4-8` → ("opus", (4, 8)),
/// `claude-3-5-sonnet` → ("sonnet", (3, 5)); `None` for anything else.
fn family_version(name: &str) -> Option<(&str, (u32, u32))> {
    let rest = name.strip_prefix("claude-")?;
    let parts: Vec<&str> = rest.split('-').collect();
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [family, major] if word(family) => Some((family, (number(major)?, 0))),
        [family, major, minor] if word(family) => Some((family, (number(major)?, number(minor)?))),
        [major, family] if word(family) => Some((family, (number(major)?, 0))),
        [major, minor, family] if word(family) => Some((family, (number(major)?, number(minor)?))),
        _ => None,
    }
}

fn strip_date(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: u64, output: u64, write: u64, write_1h: u64, read: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_creation_1h_tokens: write_1h,
            cache_read_input_tokens: read,
        }
    }

    #[test]
    fn the_embedded_table_parses_and_is_dated() {
        let table = PricingTable::embedded();
        assert!(!table.as_of.is_empty());
        assert!(table.lookup("claude-opus-4-5").is_some());
    }

    #[test]
    fn names_resolve_through_dates_prefixes_and_version_suffixes() {
        let table = PricingTable::embedded();
        let sonnet = table.lookup("claude-sonnet-4").copied();
        assert!(sonnet.is_some());
        for name in [
            "claude-sonnet-4-20250514",
            "anthropic/claude-sonnet-4-20250514",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "claude-sonnet-4@20250514",
        ] {
            assert_eq!(table.lookup(name).copied(), sonnet, "{name}");
        }
        assert!(table.lookup("gpt-4o").is_none());
        assert!(table.lookup("claude-unreleased-9").is_none());
        assert!(!table.is_estimated("claude-sonnet-4-20250514"));
    }

    #[test]
    fn claude_code_s_current_models_are_priced() {
        let table = PricingTable::embedded();
        for model in ["claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-4-6"] {
            assert!(table.lookup(model).is_some(), "{model}");
            assert!(!table.is_estimated(model), "{model}");
        }
    }

    #[test]
    fn a_new_model_of_a_known_family_is_priced_at_its_newest_as_an_estimate() {
        let table = PricingTable::embedded();
        let newest = table
            .models
            .iter()
            .filter_map(|(k, price)| {
                family_version(k)
                    .filter(|(f, _)| *f == "opus")
                    .map(|(_, v)| (v, price))
            })
            .max_by_key(|(v, _)| *v)
            .map(|(_, price)| price);
        assert!(newest.is_some());
        for model in [
            "claude-opus-9-9",
            "claude-opus-9-9-20300101",
            "claude-9-opus",
        ] {
            assert_eq!(table.lookup(model), newest, "{model}");
            assert!(table.is_estimated(model), "{model}");
        }
        assert!(table.lookup("claude-unknownfamily-1").is_none());
        assert!(!table.is_estimated("claude-unknownfamily-1"));
        assert_eq!(family_version("claude-3-5-haiku"), Some(("haiku", (3, 5))));
        assert_eq!(family_version("claude-opus-4"), Some(("opus", (4, 0))));
        assert_eq!(family_version("claude-opus-4-20250514"), None);
    }

    #[test]
    fn one_hour_cache_writes_cost_the_one_hour_rate() {
        let table = PricingTable::embedded();
        // opus 4.5: 5m writes 6.25/M, 1h writes 10/M.
        let cost = table
            .cost(
                "claude-opus-4-5-20251101",
                &tokens(0, 0, 3_000_000, 1_000_000, 0),
            )
            .unwrap_or_default();
        assert!((cost - (2.0 * 6.25 + 10.0)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn a_long_prompt_is_billed_entirely_at_long_context_rates() {
        let table = PricingTable::embedded();
        let short = table
            .cost(
                "claude-sonnet-4",
                &tokens(100_000, 1_000_000, 0, 0, 100_000),
            )
            .unwrap_or_default();
        assert!(
            (short - (0.1 * 3.0 + 15.0 + 0.1 * 0.3)).abs() < 1e-9,
            "{short}"
        );
        let long = table
            .cost(
                "claude-sonnet-4",
                &tokens(100_000, 1_000_000, 0, 0, 100_001),
            )
            .unwrap_or_default();
        assert!(
            (long - (0.1 * 6.0 + 22.5 + 0.100001 * 0.6)).abs() < 1e-9,
            "{long}"
        );
    }

    #[test]
    fn an_override_file_adds_and_replaces_models() {
        let dir = std::env::temp_dir().join(format!("sf-pricing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.json");
        std::fs::write(
            &path,
            r#"{"as_of":"2030-01-01","models":{
                "claude-opus-4-5":{"input":1,"output":2,"cache_write_5m":3,"cache_write_1h":4,"cache_read":5},
                "house-model":{"input":1,"output":1,"cache_write_5m":1,"cache_write_1h":1,"cache_read":1}}}"#,
        )
        .unwrap();
        let table = PricingTable::embedded_with_overrides(&path).unwrap();
        assert_eq!(table.as_of, "2030-01-01");
        assert_eq!(
            table.cost("house-model", &tokens(1_000_000, 0, 0, 0, 0)),
            Some(1.0)
        );
        assert_eq!(
            table.cost("claude-opus-4-5-20251101", &tokens(0, 1_000_000, 0, 0, 0)),
            Some(2.0)
        );
        assert!(
            table.lookup("claude-sonnet-4").is_some(),
            "embedded models stay"
        );

        std::fs::write(&path, "{not json").unwrap();
        let err = PricingTable::embedded_with_overrides(&path).unwrap_err();
        assert!(err.to_string().contains("prices.json"), "{err}");
        let err = PricingTable::embedded_with_overrides(&dir.join("missing.json")).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read pricing file"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
