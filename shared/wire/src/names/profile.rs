//! The profile every new user or channel name must meet, and the key that tells
//! look-alike names apart.
//!
//! A new name is taken in Unicode NFKC (so `user１` becomes `user1` and `ⅼ`
//! becomes `l`), then refused if it holds an invisible, format, control or
//! bidirectional character (what UTS #39's General Security Profile does not allow
//! in identifiers, e.g. U+3164 HANGUL FILLER), a combining mark without a letter
//! before it, or letters of more than one script (UTS #39 single-script: digits and
//! punctuation are common to all, and Han with Hiragana and Katakana is one
//! writing system). Names stored before this profile are not checked again.
//!
//! Two names are the same name when their [`name_key`] is the same: the UTS #39
//! confusable skeleton of their NFKC lower case. `uѕer1` (Cyrillic `ѕ`), `ＵＳＥＲ1` and
//! `user1` share one key, so only the first of them to be taken can be.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// More combining marks than this on one letter is decoration, not writing (Thai and
/// Devanagari need up to three; NFKC has composed Vietnamese already).
const MAX_MARKS_IN_A_ROW: usize = 3;

/// `raw` as a new name: trimmed, in NFKC, and checked against the profile; else why
/// not, for the user, naming `what` (`username`).
pub(super) fn new_name(what: &str, raw: &str) -> Result<String, String> {
    let name: String = raw.trim().nfkc().collect();
    let mut marks_in_a_row = 0;
    let mut after_letter = false;
    // The raw text too: NFKC turns U+3164 HANGUL FILLER into U+1160, which is as
    // invisible.
    if let Some(c) = raw.chars().chain(name.chars()).find(|&c| is_default_ignorable(c)) {
        return Err(format!("{what} may not hold invisible characters (U+{:04X})", c as u32));
    }
    for c in name.chars() {
        if !c.identifier_allowed() && !matches!(c, '-' | '.' | '_') {
            return Err(format!("{what} may not hold {}", describe_refused(c)));
        }
        if is_combining_mark(c) {
            marks_in_a_row += 1;
            if !after_letter {
                return Err(format!("{what} has a combining mark (U+{:04X}) without a letter before it", c as u32));
            }
            if marks_in_a_row > MAX_MARKS_IN_A_ROW {
                return Err(format!("{what} has more than {MAX_MARKS_IN_A_ROW} combining marks on one letter"));
            }
        } else {
            marks_in_a_row = 0;
            after_letter = c.is_alphabetic();
        }
    }
    if !name.as_str().is_single_script() {
        return Err(format!("{what} mixes letters of different scripts"));
    }
    Ok(name)
}

/// The key under which a name is unique: the UTS #39 confusable skeleton of its NFKC
/// lower case. Names that look alike (`user1`, `uѕer1`, `ＵＳＥＲ1`) share it.
pub fn name_key(name: &str) -> String {
    let lower = name.nfkc().collect::<String>().to_lowercase();
    unicode_security::skeleton(&lower).collect()
}

fn describe_refused(c: char) -> String {
    let kind = if c.is_control() {
        "control characters"
    } else if c.is_whitespace() {
        "spaces"
    } else if is_bidi_control(c) {
        "bidirectional controls"
    } else {
        "invisible, format or symbol characters"
    };
    format!("{kind} (U+{:04X})", c as u32)
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): characters
/// that show as nothing.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
