//! The wire shape of one transcript line, as Claude Code writes it.
//!
//! Everything here borrows from the line's bytes where JSON allows it (strings without escapes,
//! tool inputs as raw JSON), so a line costs one pass and few allocations. Fields we do not model
//! are skipped by serde without being built. These types never leave the parser: `parse` turns
//! them into the owned model of `model.rs`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string that borrows from the input when it has no escapes.
///
/// serde's own `Cow<str>` only borrows as a direct `#[serde(borrow)]` field, never inside an
/// `Option`, so without this every optional string would be copied.
#[derive(Debug)]
pub(crate) struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

/// One line of a transcript. Only the fields the parser uses are named.
#[derive(Deserialize)]
pub(crate) struct Line<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(rename = "sessionId", borrow)]
    pub session_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub cwd: Option<Str<'a>>,
    #[serde(borrow)]
    pub version: Option<Str<'a>>,
    #[serde(rename = "gitBranch", borrow)]
    pub git_branch: Option<Str<'a>>,
    #[serde(borrow)]
    pub timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub uuid: Option<Str<'a>>,
    #[serde(rename = "parentUuid", borrow)]
    pub parent_uuid: Option<Str<'a>>,
    #[serde(rename = "requestId", borrow)]
    pub request_id: Option<Str<'a>>,
    #[serde(rename = "isSidechain")]
    pub is_sidechain: Option<bool>,
    #[serde(rename = "isMeta")]
    pub is_meta: Option<bool>,
    #[serde(rename = "isCompactSummary")]
    pub is_compact_summary: Option<bool>,
    #[serde(borrow)]
    pub subtype: Option<Str<'a>>,
    #[serde(borrow)]
    pub message: Option<WireMessage<'a>>,
    /// `system` lines carry their text here.
    #[serde(borrow)]
    pub content: Option<Content<'a>>,
    /// `summary` lines carry their text here.
    #[serde(borrow)]
    pub summary: Option<Str<'a>>,
}

/// The lenient second look at a line whose full shape did not parse: is it JSON at all, and of
/// which record type?
#[derive(Deserialize)]
pub(crate) struct LineType<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Str<'a>>,
}

/// `message` of a user or assistant line: the Anthropic Messages API shape.
#[derive(Deserialize)]
pub(crate) struct WireMessage<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub role: Option<Str<'a>>,
    #[serde(borrow)]
    pub model: Option<Str<'a>>,
    #[serde(borrow)]
    pub content: Option<Content<'a>>,
    pub usage: Option<WireUsage>,
}

/// Token usage as the API reports it. Absent counts are zero.
#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct WireUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation: Option<WireCacheCreation>,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(crate) struct WireCacheCreation {
    pub ephemeral_1h_input_tokens: Option<u64>,
}

/// Message content: a plain string or a list of blocks.
pub(crate) enum Content<'a> {
    Text(Str<'a>),
    Blocks(Vec<WireBlock<'a>>),
    Null,
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Str(Cow::Owned(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        deserializer.deserialize_any(ContentVisitor(std::marker::PhantomData))
    }
}

/// One content block. Flat rather than a tagged enum: serde's tagged enums buffer every block
/// before choosing a variant, and block types we have never seen must still parse.
#[derive(Deserialize)]
pub(crate) struct WireBlock<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub text: Option<Str<'a>>,
    #[serde(borrow)]
    pub thinking: Option<Str<'a>>,
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow)]
    pub tool_use_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub content: Option<ResultContent<'a>>,
    pub is_error: Option<bool>,
    #[serde(borrow)]
    pub source: Option<ImageSource<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct ImageSource<'a> {
    #[serde(borrow)]
    pub media_type: Option<Str<'a>>,
}

/// The content of a `tool_result` block, reduced to its text: a string, or the text parts of a
/// list of blocks joined by newlines (images in a result are left out).
pub(crate) struct ResultContent<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for ResultContent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Part<'a> {
            #[serde(borrow)]
            text: Option<Str<'a>>,
        }
        struct ResultVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ResultVisitor<'a> {
            type Value = ResultContent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of result blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ResultContent(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ResultContent(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ResultContent(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ResultContent(Cow::Borrowed("")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut joined: Option<Cow<'a, str>> = None;
                while let Some(part) = seq.next_element::<Part<'a>>()? {
                    let Some(text) = part.text else { continue };
                    joined = Some(match joined {
                        None => text.0,
                        Some(mut acc) => {
                            let acc_mut = acc.to_mut();
                            acc_mut.push('\n');
                            acc_mut.push_str(&text.0);
                            acc
                        }
                    });
                }
                Ok(ResultContent(joined.unwrap_or(Cow::Borrowed(""))))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Seen in the wild from MCP servers: a single object instead of a list.
                let part = Part::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ResultContent(
                    part.text.map(|t| t.0).unwrap_or(Cow::Borrowed("")),
                ))
            }
        }
        deserializer.deserialize_any(ResultVisitor(std::marker::PhantomData))
    }
}
