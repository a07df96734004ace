//! Name keys: what two names must share to count as "the same name" to a
//! viewer reading chat. A guest may not pick a name whose key equals a
//! registered user's username key or display-name key, so "ＡＬＩＣＥ",
//! "al\u{200b}ice" or "\u{202e}alice" cannot pass for the creator `alice`.
//!
//! The key, in order:
//! 1. invisible characters removed (`streamit_api::limits::is_invisible`,
//!    Unicode's `Default_Ignorable_Code_Point`): zero-width (U+200B–U+200D,
//!    U+2060, U+FEFF, U+00AD), bidi controls (U+202A–U+202E, U+2066–U+2069,
//!    U+200E, U+200F, U+061C) and more that render as nothing (invisible
//!    operators, U+034F, Hangul fillers, Mongolian and other variation
//!    selectors, tag characters);
//! 2. NFKC (`unicode-normalization`): full-width, ligatures, super/subscripts
//!    fold into their plain letters;
//! 3. full Unicode case folding (`caseless`, `ß` → `ss`), then NFKC again
//!    (folding can de-normalise);
//! 4. white space removed ("Ali ce" imitates "Alice" as well);
//! 5. the UTS #39 confusable skeleton (`unicode-security`), case-folded again:
//!    Cyrillic "аlice" and "a1ice"-style look-alikes share the skeleton of
//!    "alice".
//!
//! The users table stores each user's keys (indexed), so the check is one
//! indexed lookup. [`KEY_VERSION`] is stored beside them; when this function
//! changes, bump it and the server recomputes every row at start-up.

use unicode_normalization::UnicodeNormalization;

/// Bump whenever [`name_key`] changes its output for any input.
/// 2: invisible means every `Default_Ignorable_Code_Point` (Hangul fillers,
/// U+2065–U+206F, … were dropped later in the key before, now up front).
pub const KEY_VERSION: i64 = 2;

/// Characters that display as nothing (or only reorder text): the contract's
/// definition, which the name pattern in the OpenAPI document uses too.
pub use streamit_api::limits::is_invisible;

/// The comparison key of a display name, guest name or username; `None` when
/// nothing visible is left (such a name is refused).
pub fn name_key(name: &str) -> Option<String> {
    let visible: String = name.chars().filter(|c| !is_invisible(*c)).collect();
    let nfkc: String = visible.nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&nfkc).nfkc().collect();
    let compact: String = folded
        .chars()
        .filter(|c| !c.is_whitespace() && !is_invisible(*c) && !c.is_control())
        .collect();
    if compact.is_empty() {
        return None;
    }
    let skeleton: String = unicode_security::skeleton(&compact).collect();
    let key: String = caseless::default_case_fold_str(&skeleton).nfkc().collect();
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        name_key(s).unwrap_or_else(|| panic!("{s:?} has no key"))
    }

    #[test]
    fn imitations_of_alice_share_its_key() {
        let alice = key("alice");
        for imitation in [
            "Alice",
            "ALICE",
            "ＡＬＩＣＥ",            // full width (NFKC)
            "al\u{200b}ice",         // zero-width space
            "\u{202e}alice",         // right-to-left override
            "a\u{2066}lice\u{2069}", // bidi isolate
            "al\u{00ad}ice",         // soft hyphen
            "\u{feff}alice\u{200d}", // BOM + zero-width joiner
            "ali\u{200e}ce\u{061c}", // LRM + Arabic letter mark
            "  alice  ",
            "a lice",
            "\u{0430}lice", // Cyrillic а (confusable skeleton)
            "a\u{13de}ice", // Cherokee Ꮮ looks like L
            "a1ice",        // digit one (skeleton l)
            "ａｌｉｃｅ",
        ] {
            assert_eq!(key(imitation), alice, "{imitation:?}");
        }
    }

    #[test]
    fn case_folding_is_full_not_just_lowercase() {
        // ß folds to ss (to_lowercase keeps ß).
        assert_eq!(key("Straße"), key("STRASSE"));
        // Greek final sigma folds to σ.
        assert_eq!(key("ΟΔΟΣ"), key("οδος"));
    }

    #[test]
    fn different_names_stay_different() {
        for (a, b) in [
            ("alice", "alicia"),
            ("bob", "rob"),
            ("Guest", "alice"),
            ("Zoë", "Zoe2"),
        ] {
            assert_ne!(key(a), key(b), "{a:?} vs {b:?}");
        }
        // Non-Latin names keep a key of their own.
        assert_ne!(key("Мария"), key("alice"));
        assert_eq!(key("Мария"), key("МАРИЯ"));
    }

    #[test]
    fn names_of_nothing_visible_have_no_key() {
        for empty in [
            "",
            "   ",
            "\u{200b}\u{200c}\u{200d}",
            "\u{202e}\u{2066}\u{2069}",
            "\u{feff}\u{00ad}\u{2060}",
            "\u{200e}\u{200f}\u{061c}",
            "\t\u{3000}", // ideographic space
        ] {
            assert_eq!(name_key(empty), None, "{empty:?}");
        }
    }

    /// A name the contract accepts (`limits::check_name`: something neither
    /// white space nor invisible in it) always has a key, so the server never
    /// refuses a schema-valid guest name for having none.
    #[test]
    fn every_visible_character_has_a_key() {
        let keyless: Vec<String> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .map(|c| c.to_string())
            .filter(|s| streamit_api::limits::check_name("n", s).is_ok() && name_key(s).is_none())
            .map(|s| format!("U+{:04X}", s.chars().next().unwrap() as u32))
            .collect();
        assert!(keyless.is_empty(), "{keyless:?}");
    }
}
