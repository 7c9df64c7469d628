//! One emoji, as a reaction names it.
//!
//! The check follows the shape of Unicode's emoji sequences (UTS #51) over the ranges
//! emoji are drawn from: a pictograph, optionally with a presentation selector, a skin
//! tone and a keycap mark, several of them joined by zero-width joiners, a flag (two
//! regional indicators) or a tag sequence. It refuses text, spaces and more than one
//! emoji; it does not check that a sequence is one Unicode names (a page shows an
//! unknown sequence as its parts, which is harmless).

/// The most bytes an emoji takes (the longest family and flag sequences fit).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Why `raw` (trimmed) is not one emoji, if it is not.
pub(super) fn check(emoji: &str) -> Result<(), String> {
    if emoji.is_empty() {
        return Err("emoji is empty".into());
    }
    if emoji.len() > MAX_EMOJI_BYTES {
        return Err(format!("emoji is {} bytes long; the limit is {MAX_EMOJI_BYTES}", emoji.len()));
    }
    if !is_one_emoji(emoji) {
        return Err("emoji must be exactly one emoji".into());
    }
    Ok(())
}

const ZWJ: char = '\u{200D}';
const KEYCAP: char = '\u{20E3}';

/// Whether `text` is one emoji sequence: one pictograph (or keycap base, or flag)
/// with its modifiers, or several joined by zero-width joiners.
fn is_one_emoji(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // A flag: exactly two regional indicators.
    if chars.iter().all(|&c| is_regional_indicator(c)) {
        return chars.len() == 2;
    }
    let mut expect_base = true;
    let mut keycap_base = false;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if expect_base {
            if is_pictograph(c) {
                keycap_base = false;
            } else if c.is_ascii_digit() || c == '#' || c == '*' {
                keycap_base = true;
            } else {
                return false;
            }
            expect_base = false;
        } else if c == ZWJ {
            if keycap_base {
                return false;
            }
            expect_base = true;
        } else if c == KEYCAP {
            if !keycap_base {
                return false;
            }
            keycap_base = false;
        } else if !is_modifier(c) {
            // A second emoji without a joiner.
            return false;
        }
        index += 1;
    }
    !expect_base && !keycap_base
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Presentation selectors, skin tones and tag characters: they extend an emoji.
fn is_modifier(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{E0020}'..='\u{E007F}')
}

/// The characters emoji are drawn from (Extended_Pictographic, in ranges).
fn is_pictograph(c: char) -> bool {
    !is_regional_indicator(c)
        && !is_modifier(c)
        && matches!(c,
            '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
            | '\u{2194}'..='\u{21AA}' | '\u{231A}'..='\u{23FF}' | '\u{24C2}' | '\u{25AA}'..='\u{25FE}'
            | '\u{2600}'..='\u{27BF}' | '\u{2934}'..='\u{2935}' | '\u{2B05}'..='\u{2B55}'
            | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}' | '\u{1F000}'..='\u{1FAFF}')
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
        for bad in ["", " ", "a", "1", "ok", "👍👍", "👍 👍", "👍a", "🇻🇳🇻", "\u{200D}", "👍\u{200D}", "<b>", "🏽"]
        {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(&"👍\u{FE0F}".repeat(9)).is_err(), "over 32 bytes");
    }
}
