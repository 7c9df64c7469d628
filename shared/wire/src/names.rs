//! Validated names and message text.
//!
//! Every service parses what it receives through these types, so a name that one
//! service accepts is accepted by all of them.

mod emoji;
mod profile;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use emoji::MAX_EMOJI_BYTES;
pub use profile::name_key;

/// The longest user or channel name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest message, in characters (a chat line, not a document).
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// Why a name or a message was refused; the text is meant for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput(pub String);

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

/// A user name: 1 to 32 letters (any script), digits, `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim();
        check_name("username", name)?;
        Ok(Self(name.to_owned()))
    }

    /// A name for a new account: [`Username::parse`], and the profile of new names
    /// (NFKC; no invisible, format, control or bidirectional character; no stray
    /// combining mark; one script), as the `names/profile.rs` module doc sets it out.
    pub fn parse_new(raw: &str) -> Result<Self, InvalidInput> {
        let name = profile::new_name("username", raw).map_err(InvalidInput)?;
        check_name("username", &name)?;
        Ok(Self(name))
    }

    /// The key under which the name is unique ([`name_key`]).
    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A channel name: like a user name, stored in lower case so `General` and `general`
/// are one channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim().trim_start_matches('#').to_lowercase();
        check_name("channel name", &name)?;
        Ok(Self(name))
    }

    /// A name for a new channel: [`ChannelName::parse`], and the profile of new names
    /// as [`Username::parse_new`] applies it.
    pub fn parse_new(raw: &str) -> Result<Self, InvalidInput> {
        let name =
            profile::new_name("channel name", raw.trim().trim_start_matches('#')).map_err(InvalidInput)?.to_lowercase();
        check_name("channel name", &name)?;
        Ok(Self(name))
    }

    /// The key under which the name is unique ([`name_key`]).
    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of a chat message: not blank, at most [`MAX_MESSAGE_CHARS`] characters,
/// no control characters other than newline and tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let text = raw.trim_end();
        if text.trim().is_empty() {
            return Err(InvalidInput("message is empty".into()));
        }
        let chars = text.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(InvalidInput(format!("message is {chars} characters long; the limit is {MAX_MESSAGE_CHARS}")));
        }
        if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
            return Err(InvalidInput("message contains control characters".into()));
        }
        Ok(Self(text.to_owned()))
    }

    /// The empty text of a deleted message (a tombstone), which no sender can send.
    pub fn tombstone() -> Self {
        Self(String::new())
    }

    /// [`MessageText::parse`], or the empty text of a tombstone.
    pub fn parse_stored(raw: &str, deleted: bool) -> Result<Self, InvalidInput> {
        if deleted && raw.is_empty() { Ok(Self::tombstone()) } else { Self::parse(raw) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One emoji, as a reaction names it: a single emoji (a pictograph with its
/// modifiers, a joined sequence, a flag or a keycap) of at most [`MAX_EMOJI_BYTES`]
/// bytes; the `names/emoji.rs` module doc says what is checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let emoji = raw.trim();
        emoji::check(emoji).map_err(InvalidInput)?;
        Ok(Self(emoji.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name(what: &str, name: &str) -> Result<(), InvalidInput> {
    if name.is_empty() {
        return Err(InvalidInput(format!("{what} is empty")));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(InvalidInput(format!("{what} is {chars} characters long; the limit is {MAX_NAME_CHARS}")));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(InvalidInput(format!("{what} may hold only letters, digits, `_`, `-` and `.`, not {bad:?}")));
    }
    Ok(())
}

macro_rules! string_newtype_impls {
    ($($ty:ident),*) => {$(
        impl TryFrom<String> for $ty {
            type Error = InvalidInput;
            fn try_from(raw: String) -> Result<Self, InvalidInput> {
                Self::parse(&raw)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

string_newtype_impls!(Username, ChannelName, MessageText, Emoji);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_names_and_text_are_accepted() {
        assert_eq!(Username::parse("Nguyễn_Văn-An").unwrap().as_str(), "Nguyễn_Văn-An");
        assert_eq!(ChannelName::parse("#Chào").unwrap().as_str(), "chào");
        assert_eq!(MessageText::parse("Xin chào các bạn! 🎉").unwrap().as_str(), "Xin chào các bạn! 🎉");
    }

    #[test]
    fn names_with_markup_or_spaces_are_refused() {
        assert!(Username::parse("<script>").is_err());
        assert!(Username::parse("two words").is_err());
        assert!(ChannelName::parse("a/b").is_err());
        assert!(Username::parse("").is_err());
        assert!(Username::parse(&"x".repeat(33)).is_err());
    }

    #[test]
    fn blank_huge_or_control_messages_are_refused() {
        assert!(MessageText::parse("   \n").is_err());
        assert!(MessageText::parse(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse("bell\u{7}").is_err());
        assert!(MessageText::parse(&"a".repeat(MAX_MESSAGE_CHARS)).is_ok());
    }

    #[test]
    fn new_names_are_taken_in_nfkc() {
        assert_eq!(Username::parse_new("user１").unwrap().as_str(), "user1");
        assert_eq!(Username::parse_new("ＵＳＥＲ1").unwrap().as_str(), "USER1");
        assert_eq!(ChannelName::parse_new("#genera\u{217C}").unwrap().as_str(), "general");
        assert_eq!(Username::parse_new("Nguyễn_Văn-An").unwrap().as_str(), "Nguyễn_Văn-An");
        // Decomposed Vietnamese (as some keyboards send it) is composed.
        assert_eq!(Username::parse_new("Nguye\u{302}\u{303}n").unwrap().as_str(), "Nguyễn");
    }

    #[test]
    fn new_names_refuse_invisible_format_and_bidi_characters() {
        for bad in [
            "\u{3164}",
            "\u{1160}",
            "\u{FFA0}",
            "user\u{3164}",
            "us\u{200B}er",
            "\u{202E}evil",
            "a\u{2066}b",
            "x\u{AD}y",
            "a\u{FEFF}",
        ] {
            assert!(Username::parse_new(bad).is_err(), "{bad:?} was accepted");
            assert!(ChannelName::parse_new(bad).is_err(), "{bad:?} was accepted as a channel");
        }
    }

    #[test]
    fn new_names_refuse_stray_combining_marks_and_mixed_scripts() {
        assert!(Username::parse_new("\u{301}user").is_err());
        assert!(Username::parse_new("user1\u{308}").is_err());
        assert!(Username::parse_new("_\u{301}").is_err());
        assert!(Username::parse_new("e\u{301}\u{301}\u{301}\u{301}").is_err());
        assert!(Username::parse_new("u\u{455}er1").is_err(), "Latin with a Cyrillic dze");
        assert!(ChannelName::parse_new("genеral").is_err(), "Latin with a Cyrillic ie");
        // One script each, with common digits and punctuation.
        for good in ["user1", "alice", "Борис_2", "山田-太郎", "やまだ.たろう", "สมชาย", "Ελένη"]
        {
            assert!(Username::parse_new(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let key = name_key("user1");
        for alike in ["u\u{455}er1", "user１", "ＵＳＥＲ1", "USER1", "User1"] {
            assert_eq!(name_key(alike), key, "{alike:?}");
        }
        assert_eq!(name_key("genera\u{217C}"), name_key("general"));
        // A whole-script look-alike: Cyrillic а, р, е.
        assert_eq!(name_key("\u{430}\u{440}\u{435}"), name_key("ape"));
        assert_ne!(name_key("alice"), name_key("bob"));
        assert_ne!(name_key("Nguyễn"), name_key("Nguyen"));
    }

    #[test]
    fn names_deserialize_through_parse() {
        let name: ChannelName = serde_json::from_str("\"GENERAL\"").unwrap();
        assert_eq!(name.as_str(), "general");
        assert!(serde_json::from_str::<Username>("\"a b\"").is_err());
    }
}
