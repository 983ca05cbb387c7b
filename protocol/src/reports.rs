//! The usage and tools reports: what `GET /api/usage` and `GET /api/tools` answer and
//! `sessionflow usage --json` and `tools --json` print.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Token counts and their cost in USD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tokens {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_read_input_tokens: i64,
    /// `null` for a model without a price; in a row or the totals, unpriced models' cost is
    /// left out.
    pub cost_usd: Option<f64>,
}

impl Tokens {
    pub fn add(&mut self, other: &Tokens) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        // Unpriced tokens add nothing to a priced sum; -0.0 never shows ("-0.00").
        let sum = self.cost_usd.unwrap_or(0.0) + other.cost_usd.unwrap_or(0.0) + 0.0;
        self.cost_usd = Some(sum);
    }

    /// The cost, 0 when unpriced.
    pub fn cost(&self) -> f64 {
        self.cost_usd.unwrap_or(0.0) + 0.0
    }
}

/// What a usage row stands for: the key is named after the grouping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowKey {
    /// YYYY-MM-DD in the report's time zone, or `undated`.
    Date(String),
    /// YYYY-MM.
    Month(String),
    SessionId(String),
    /// The device of the session that first holds the responses (`unknown` when unset).
    DeviceId(String),
    WorkspaceId(String),
}

impl RowKey {
    pub fn value(&self) -> &str {
        match self {
            RowKey::Date(v)
            | RowKey::Month(v)
            | RowKey::SessionId(v)
            | RowKey::DeviceId(v)
            | RowKey::WorkspaceId(v) => v,
        }
    }
}

/// One model's share of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelUsage {
    pub model: String,
    #[serde(flatten)]
    pub tokens: Tokens,
    /// Priced at its family's newest rates, the price table lacking the model (shown `≈`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cost_estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    #[serde(flatten)]
    pub key: RowKey,
    #[serde(flatten)]
    pub tokens: Tokens,
    pub models: Vec<ModelUsage>,
}

/// A usage report: each API response counted once across sessions and devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
    pub totals: Tokens,
}

impl UsageReport {
    /// Models without a price (their tokens counted, their cost not), in order of appearance.
    pub fn unpriced(&self) -> Vec<&str> {
        self.models(|m| m.tokens.cost_usd.is_none())
    }

    /// Models priced by their family's newest rates.
    pub fn estimated(&self) -> Vec<&str> {
        self.models(|m| m.cost_estimated)
    }

    fn models(&self, wanted: impl Fn(&ModelUsage) -> bool) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for m in self.rows.iter().flat_map(|r| &r.models) {
            if wanted(m) && !names.contains(&m.model.as_str()) {
                names.push(&m.model);
            }
        }
        names
    }
}

/// One tool's totals over every session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolTotals {
    pub tool_name: String,
    pub calls: i64,
    /// Calls whose result was an error.
    pub errors: i64,
    pub error_rate: f64,
    pub sessions: i64,
    /// Distinct files the tool was given.
    pub files: i64,
}

/// `GET /api/tools`: every tool, most called first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolsReport {
    pub tools: Vec<ToolTotals>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_named_by_its_grouping_and_an_unpriced_model_costs_null() {
        let row = UsageRow {
            key: RowKey::Date("2026-12-01".into()),
            tokens: Tokens {
                input_tokens: 1,
                output_tokens: 2,
                cache_creation_input_tokens: 3,
                cache_read_input_tokens: 4,
                cost_usd: Some(0.5),
            },
            models: vec![ModelUsage {
                model: "house-model".into(),
                tokens: Tokens {
                    cost_usd: None,
                    ..Tokens::default()
                },
                cost_estimated: false,
            }],
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "date": "2026-12-01", "input_tokens": 1, "output_tokens": 2,
                "cache_creation_input_tokens": 3, "cache_read_input_tokens": 4, "cost_usd": 0.5,
                "models": [{"model": "house-model", "input_tokens": 0, "output_tokens": 0,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                            "cost_usd": null}]
            })
        );
        assert_eq!(serde_json::from_value::<UsageRow>(json).unwrap(), row);
    }

    #[test]
    fn adding_never_gives_negative_zero() {
        let mut total = Tokens::default();
        total.add(&Tokens {
            cost_usd: Some(-0.0),
            ..Tokens::default()
        });
        assert!(total.cost().is_sign_positive());
    }
}
