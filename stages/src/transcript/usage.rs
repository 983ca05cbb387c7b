//! Token usage, deduplicated per API response.
//!
//! Claude Code writes one API response over several lines (one per content block), each with a
//! copy of the usage, early ones partial; resumed and forked sessions repeat earlier responses in
//! their own files. Counting every line would count the same spend many times. The ledger keeps
//! one entry per response, keyed as ccusage 20 keys it: `message.id:requestId`, or `message.id`
//! alone when the request id is missing; among entries with one key the one with the largest token
//! total wins (the final numbers, not a partial). Lines with no `message.id` cannot be matched and
//! are each counted.

use std::collections::HashMap;

use serde::Serialize;

use super::model::TokenUsage;
use super::pricing::{ModelPrice, PricingTable};

/// Name under which usage without a model is reported.
pub const UNKNOWN_MODEL: &str = "unknown";

/// One API response's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageEntry {
    /// The deduplication key; `None` when the line had no `message.id`.
    pub key: Option<String>,
    pub model: Option<String>,
    pub usage: TokenUsage,
}

/// The deduplicated usage of one transcript, or of many merged together.
#[derive(Debug, Default, Clone, Serialize)]
pub struct UsageLedger {
    entries: Vec<UsageEntry>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl UsageLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one line's usage under the ccusage key rule.
    pub fn record(
        &mut self,
        message_id: Option<&str>,
        request_id: Option<&str>,
        model: Option<&str>,
        usage: TokenUsage,
    ) {
        let key = message_id.map(|id| match request_id {
            Some(req) => format!("{id}:{req}"),
            None => id.to_owned(),
        });
        self.insert(UsageEntry {
            key,
            model: model.map(str::to_owned),
            usage,
        });
    }

    fn insert(&mut self, entry: UsageEntry) {
        let Some(key) = &entry.key else {
            self.entries.push(entry);
            return;
        };
        match self.index.get(key) {
            Some(&at) => {
                if entry.usage.total() > self.entries[at].usage.total() {
                    self.entries[at] = entry;
                }
            }
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Folds another ledger in under the same rule, so a response that appears in several files
    /// (a resumed or forked session) is counted once.
    pub fn merge(&mut self, other: UsageLedger) {
        for entry in other.entries {
            self.insert(entry);
        }
    }

    pub fn entries(&self) -> &[UsageEntry] {
        &self.entries
    }

    /// Number of distinct responses (plus lines without a `message.id`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries added up.
    pub fn totals(&self) -> TokenUsage {
        let mut total = TokenUsage::default();
        for entry in &self.entries {
            total.add(&entry.usage);
        }
        total
    }

    /// Usage and cost per model, in order of first appearance. A model the pricing table does not
    /// know has `cost_usd: None`: unpriced, not free.
    pub fn by_model(&self, pricing: &PricingTable) -> Vec<ModelUsage> {
        // Each model's price is looked up once, not once per response.
        let mut models: Vec<(ModelUsage, Option<&ModelPrice>)> = Vec::new();
        for entry in &self.entries {
            let name = entry.model.as_deref().unwrap_or(UNKNOWN_MODEL);
            let at = match models.iter().position(|(m, _)| m.model == name) {
                Some(at) => at,
                None => {
                    let resolved = pricing.resolve(name);
                    let mut usage = ModelUsage::new(name);
                    usage.cost_estimated = resolved.is_some_and(|(_, estimated)| estimated);
                    models.push((usage, resolved.map(|(price, _)| price)));
                    models.len() - 1
                }
            };
            let (model, price) = &mut models[at];
            model.add(&entry.usage, price.map(|p| p.cost(&entry.usage)));
        }
        models.into_iter().map(|(model, _)| model).collect()
    }
}

/// Usage and cost of one model. Serialized with exactly the keys `inspect --json` promises.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// `None` when the model has no price: reported as unpriced.
    pub cost_usd: Option<f64>,
    /// Priced at its family's newest rates, the table lacking the model itself (shown `≈`; in
    /// JSON only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
}

impl ModelUsage {
    fn new(model: &str) -> Self {
        ModelUsage {
            model: model.to_owned(),
            input_tokens: 0,
            output_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            cost_usd: Some(0.0),
            cost_estimated: false,
        }
    }

    fn add(&mut self, usage: &TokenUsage, cost: Option<f64>) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cache_creation_input_tokens += usage.cache_creation_input_tokens;
        self.cache_read_input_tokens += usage.cache_read_input_tokens;
        self.cost_usd = match (self.cost_usd, cost) {
            (Some(sum), Some(cost)) => Some(sum + cost),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            output_tokens: output,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn the_largest_duplicate_wins_whatever_the_order() {
        let mut ledger = UsageLedger::new();
        ledger.record(Some("msg_1"), Some("req_1"), Some("m"), usage(10, 1));
        ledger.record(Some("msg_1"), Some("req_1"), Some("m"), usage(10, 250));
        ledger.record(Some("msg_1"), Some("req_1"), Some("m"), usage(10, 7));
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger.totals(), usage(10, 250));
    }

    #[test]
    fn request_id_separates_and_its_absence_falls_back_to_message_id() {
        let mut ledger = UsageLedger::new();
        ledger.record(Some("msg_1"), Some("req_1"), None, usage(1, 1));
        ledger.record(Some("msg_1"), Some("req_2"), None, usage(2, 2));
        ledger.record(Some("msg_2"), None, None, usage(3, 3));
        ledger.record(Some("msg_2"), None, None, usage(3, 5));
        ledger.record(None, Some("req_9"), None, usage(4, 4));
        ledger.record(None, Some("req_9"), None, usage(4, 4));
        assert_eq!(ledger.len(), 5);
        assert_eq!(ledger.totals(), usage(1 + 2 + 3 + 4 + 4, 1 + 2 + 5 + 4 + 4));
    }

    #[test]
    fn merging_files_counts_a_shared_response_once() {
        let mut parent = UsageLedger::new();
        parent.record(Some("msg_1"), Some("req_1"), Some("m"), usage(5, 5));
        let mut resumed = UsageLedger::new();
        resumed.record(Some("msg_1"), Some("req_1"), Some("m"), usage(5, 5));
        resumed.record(Some("msg_2"), Some("req_2"), Some("m"), usage(1, 1));
        parent.merge(resumed);
        assert_eq!(parent.totals(), usage(6, 6));
    }

    #[test]
    fn an_unknown_model_is_unpriced_not_free() {
        let mut ledger = UsageLedger::new();
        ledger.record(
            Some("a"),
            None,
            Some("claude-sonnet-4-20250514"),
            usage(0, 100_000),
        );
        ledger.record(
            Some("b"),
            None,
            Some("some-future-model"),
            usage(0, 100_000),
        );
        let models = ledger.by_model(PricingTable::embedded());
        assert_eq!(models[0].cost_usd, Some(1.5));
        assert_eq!(models[1].model, "some-future-model");
        assert_eq!(models[1].cost_usd, None);
    }
}
