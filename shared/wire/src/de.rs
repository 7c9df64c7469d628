//! Lenient deserializers for fields the original sent in more than one shape.

use serde::{Deserialize, Deserializer, de::Error};

/// The original sent ports as numbers in JSON and as strings in forms and some JSON
/// replies; both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortRepr {
    Number(u64),
    Text(String),
}

fn port_from_repr<E: Error>(repr: PortRepr) -> Result<u16, E> {
    let number = match repr {
        PortRepr::Number(n) => n,
        PortRepr::Text(text) => {
            text.trim().parse::<u64>().map_err(|_| E::custom(format!("invalid port `{text}`: expected a number")))?
        }
    };
    match u16::try_from(number) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(E::custom(format!("invalid port {number}: expected 1 to 65535"))),
    }
}

pub(crate) fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    port_from_repr(PortRepr::deserialize(deserializer)?)
}

pub(crate) fn opt_port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    match Option::<PortRepr>::deserialize(deserializer)? {
        None => Ok(None),
        Some(PortRepr::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(repr) => port_from_repr(repr).map(Some),
    }
}

/// Optional numbers that forms send as text (`limit=50`), and where an empty value
/// means "not given".
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberRepr {
    Number(u64),
    Text(String),
}

pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumberRepr>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberRepr::Number(n)) => Ok(Some(n)),
        Some(NumberRepr::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(NumberRepr::Text(text)) => {
            text.trim().parse().map(Some).map_err(|_| D::Error::custom(format!("invalid number `{text}`")))
        }
    }
}

/// Optional text where an empty value means "not given".
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.trim().is_empty()))
}

/// An id given as a JSON number or as text (forms send everything as text).
pub(crate) fn id_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = match NumberRepr::deserialize(deserializer)? {
        NumberRepr::Number(n) => n.to_string(),
        NumberRepr::Text(text) => text.trim().to_owned(),
    };
    if text.is_empty() {
        return Err(D::Error::custom("id is empty"));
    }
    Ok(text)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FlagRepr {
    Bool(bool),
    Text(String),
}

/// A yes/no given as a JSON boolean or as form text (`true`/`false`, `1`/`0`, `on`/`off`).
pub(crate) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    match FlagRepr::deserialize(deserializer)? {
        FlagRepr::Bool(flag) => Ok(flag),
        FlagRepr::Text(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(D::Error::custom(format!("invalid flag `{text}`: expected true or false"))),
        },
    }
}

pub(crate) fn yes() -> bool {
    true
}

/// A message's text as peers hand it over: [`MessageText`], or empty for a deleted
/// message (a tombstone).
pub(crate) fn message_or_tombstone<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<crate::names::MessageText, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::names::MessageText::parse_stored(&text, true).map_err(D::Error::custom)
}
