//! One emoji, as a reaction names it: a sequence the Unicode emoji lists name (UTS #51,
//! through the `emojis` crate, generated from them): a pictograph with its variation
//! selector or skin tone, a keycap, a flag, a tag sequence, a joined family. Text,
//! spaces, a lone modifier, two emoji and sequences Unicode does not name are refused.

/// The most bytes an emoji takes (the longest family and flag sequences fit).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Why `emoji` (trimmed) is not one emoji, if it is not.
pub(super) fn check(emoji: &str) -> Result<(), String> {
    if emoji.is_empty() {
        return Err("emoji is empty".into());
    }
    if emoji.len() > MAX_EMOJI_BYTES {
        return Err(format!("emoji is {} bytes long; the limit is {MAX_EMOJI_BYTES}", emoji.len()));
    }
    if emojis::get(emoji).is_none() {
        return Err("emoji must be exactly one emoji".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<String, String> {
        check(raw.trim()).map(|()| raw.trim().to_owned())
    }

    #[test]
    fn single_emoji_and_their_sequences_are_accepted() {
        for ok in
            ["👍", "❤️", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇻🇳", "1️⃣", "#️⃣", "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}"]
        {
            assert_eq!(parse(ok), Ok(ok.to_owned()), "{ok:?}");
        }
    }

    #[test]
    fn text_spaces_and_several_emoji_are_refused() {
        for bad in ["", " ", "a", "1", "ok", "👍👍", "👍 👍", "👍a", "🇻🇳🇻", "\u{200D}", "👍\u{200D}", "<b>", "🏽", "🇿🇿"]
        {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(&"👍\u{FE0F}".repeat(9)).is_err(), "over 32 bytes");
    }
}
