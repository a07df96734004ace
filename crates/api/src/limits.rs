//! Every limit the server puts on a request, in one place.
//!
//! The server validates with the `check_*` functions and the patterns below,
//! the OpenAPI document states the same constants and patterns (the
//! [`schema`] module, feature `openapi`), and clients (the studio) can use
//! them for their own input limits. Neither side restates a number or a
//! character class, so the document cannot say something the server does not
//! enforce.
//!
//! Lengths are in Unicode scalar values (what JSON Schema's `minLength` /
//! `maxLength` count) of the string as sent, before the server trims it.
//! Patterns are anchored regular expressions written so that ECMA-262 (with
//! the `u` flag, what JSON Schema names), Python's `re` and Rust's `regex`
//! read them alike: explicit character classes, no `\s` / `\w` / `\d`, whose
//! meaning differs between them.

use std::sync::LazyLock;

use regex::Regex;

/// A stream title.
pub const TITLE_MAX: usize = 140;
/// A stream description.
pub const DESCRIPTION_MAX: usize = 5_000;
/// A display name or a guest name.
pub const NAME_MAX: usize = 64;
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;
/// The username of a login, white space around it included (a longer one
/// can name no account).
pub const LOGIN_USERNAME_MAX: usize = 256;
/// A participant identity (user ids are 32 hex digits, guests `guest-` + 32)
/// or a stream's `hostId` (a user id).
pub const IDENTITY_MAX: usize = 64;
/// A moderation note.
pub const REASON_MAX: usize = 200;
/// Largest request body the server reads, in bytes.
pub const BODY_MAX_BYTES: usize = 64 * 1024;
/// Slow mode (`isChatDelayed`): one chat message per viewer per this many seconds.
pub const SLOW_MODE_SECS: u64 = 10;
/// A chat message, in Unicode scalar values (the page and the studio cut at this).
pub const CHAT_MESSAGE_MAX: usize = 500;
/// A timeout from the studio: 1 second to 7 days.
pub const TIMEOUT_SECS_MIN: u64 = 1;
pub const TIMEOUT_SECS_MAX: u64 = 7 * 24 * 3600;
/// Upper bounds of the studio's figures in a stats report: far above any real
/// session (a year at 60 fps on three layers is ~6e9 frames), low enough that
/// a garbage value is refused instead of stored. The lower bound is 0.
pub const CHAT_MESSAGES_MAX: i64 = 1_000_000_000;
pub const FRAMES_MAX: i64 = 1_000_000_000_000;
pub const BITRATE_BPS_MAX: i64 = 10_000_000_000;
pub const RECONNECTS_MAX: i64 = 1_000_000;

/// Characters that display as nothing (or only reorder text) and so let two
/// different strings look the same: removed from names before they are
/// stored or compared (see the server's `names` module). Exactly Unicode's
/// `Default_Ignorable_Code_Point`: what a renderer may draw as nothing.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                      // soft hyphen
        | '\u{034F}'                    // combining grapheme joiner
        | '\u{061C}'                    // Arabic letter mark
        | '\u{115F}'..='\u{1160}'       // Hangul choseong / jungseong fillers
        | '\u{17B4}'..='\u{17B5}'       // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'       // Mongolian variation selectors, vowel separator
        | '\u{200B}'..='\u{200F}'       // zero-width space/non-joiner/joiner, LRM, RLM
        | '\u{202A}'..='\u{202E}'       // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates, deprecated format characters
        | '\u{3164}'                    // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'       // variation selectors
        | '\u{FEFF}'                    // zero-width no-break space / BOM
        | '\u{FFA0}'                    // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFF8}'       // unassigned, default ignorable
        | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}'     // musical symbol format controls
        | '\u{E0000}'..='\u{E0FFF}' // tag characters, variation selectors supplement
    )
}

/// The character classes the patterns are made of (contents of `[…]`).
pub mod class {
    /// White space: what `str::trim` removes (Unicode `White_Space`).
    pub const WHITE_SPACE: &str =
        r"\t-\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
    /// Control characters (Unicode `Cc`, `char::is_control`).
    pub const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
    /// Control characters but tab, line feed and carriage return.
    pub const CONTROL_BUT_LINES: &str = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F";
    /// [`super::is_invisible`]. The code points above U+FFFF stand in the
    /// pattern as themselves: no escape for them is read alike by ECMA-262,
    /// Python and Rust.
    pub const INVISIBLE: &str = concat!(
        r"\xAD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E",
        r"\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8",
        "\u{1BCA0}-\u{1BCA3}\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}"
    );
}

/// The patterns (anchored; JSON Schema `pattern`).
pub mod pattern {
    use super::class::*;
    use super::*;

    static USERNAME: LazyLock<String> = LazyLock::new(|| {
        format!("^[{WHITE_SPACE}]*[A-Za-z0-9_]{{{USERNAME_MIN},{USERNAME_MAX}}}[{WHITE_SPACE}]*$")
    });
    static LINE: LazyLock<String> =
        LazyLock::new(|| format!("^[^{CONTROL}]*[^{WHITE_SPACE}{CONTROL}][^{CONTROL}]*$"));
    static NAME: LazyLock<String> = LazyLock::new(|| {
        format!("^[^{CONTROL}]*[^{WHITE_SPACE}{CONTROL}{INVISIBLE}][^{CONTROL}]*$")
    });
    static TEXT: LazyLock<String> = LazyLock::new(|| format!("^[^{CONTROL_BUT_LINES}]*$"));
    static NOTE: LazyLock<String> = LazyLock::new(|| format!("^[^{CONTROL}]*$"));
    static TOKEN: LazyLock<String> =
        LazyLock::new(|| format!("^[^{WHITE_SPACE}{CONTROL}]{{1,{IDENTITY_MAX}}}$"));

    /// A username at registration: 3–32 of `A-Z a-z 0-9 _` (stored lower-case),
    /// white space around it ignored.
    pub fn username() -> &'static str {
        &USERNAME
    }

    /// One line with something visible in it, no control characters (a title).
    pub fn line() -> &'static str {
        &LINE
    }

    /// A name: one line with a character that is neither white space nor
    /// invisible, no control characters.
    pub fn name() -> &'static str {
        &NAME
    }

    /// Text that may span lines (tab, CR and LF), no other control characters
    /// (a description).
    pub fn text() -> &'static str {
        &TEXT
    }

    /// One line, possibly empty, no control characters (a moderation note).
    pub fn note() -> &'static str {
        &NOTE
    }

    /// 1–64 characters, neither white space nor control (an identity, a hostId).
    pub fn token() -> &'static str {
        &TOKEN
    }

    pub(crate) fn regex(pattern: &str) -> Regex {
        Regex::new(pattern).expect("the limits' patterns are valid regular expressions")
    }
}

static USERNAME_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::username()));
static LINE_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::line()));
static NAME_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::name()));
static TEXT_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::text()));
static NOTE_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::note()));
static TOKEN_RE: LazyLock<Regex> = LazyLock::new(|| pattern::regex(pattern::token()));

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A title: at most [`TITLE_MAX`] characters, something visible, one line.
/// Returns it trimmed.
pub fn check_title(raw: &str) -> Result<String, String> {
    if chars(raw) > TITLE_MAX {
        return Err(format!("title must be at most {TITLE_MAX} characters"));
    }
    if !LINE_RE.is_match(raw) {
        return Err(if has_control(raw) {
            "title must not contain control characters".into()
        } else {
            "title must not be empty".into()
        });
    }
    Ok(raw.trim().to_string())
}

/// A description: at most [`DESCRIPTION_MAX`] characters, no control
/// characters but line breaks and tabs. Returns it trimmed; empty means none.
pub fn check_description(raw: &str) -> Result<Option<String>, String> {
    if chars(raw) > DESCRIPTION_MAX {
        return Err(format!(
            "description must be at most {DESCRIPTION_MAX} characters"
        ));
    }
    if !TEXT_RE.is_match(raw) {
        return Err("description must not contain control characters".into());
    }
    let t = raw.trim();
    Ok((!t.is_empty()).then(|| t.to_string()))
}

/// A display or guest name (`field` names it in the message): at most
/// [`NAME_MAX`] characters, one line, with a character that is neither white
/// space nor invisible. Returns it with invisible characters removed, trimmed:
/// a name must read as what it is.
pub fn check_name(field: &str, raw: &str) -> Result<String, String> {
    if chars(raw) > NAME_MAX {
        return Err(format!("{field} must be at most {NAME_MAX} characters"));
    }
    if !NAME_RE.is_match(raw) {
        return Err(if has_control(raw) {
            format!("{field} must not contain control characters")
        } else {
            format!("{field} must not be empty")
        });
    }
    let visible: String = raw.chars().filter(|c| !is_invisible(*c)).collect();
    Ok(visible.trim().to_string())
}

/// A username at registration. Returns it trimmed and lower-cased.
pub fn check_username(raw: &str) -> Result<String, String> {
    if !USERNAME_RE.is_match(raw) {
        return Err(format!(
            "username must be {USERNAME_MIN}-{USERNAME_MAX} characters of a-z, 0-9 and _"
        ));
    }
    Ok(raw.trim().to_ascii_lowercase())
}

/// A password at registration.
pub fn check_password(raw: &str) -> Result<(), String> {
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&chars(raw)) {
        return Err(format!(
            "password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
        ));
    }
    Ok(())
}

/// The fields of a login: only their length is limited.
pub fn check_login(username: &str, password: &str) -> Result<(), String> {
    if chars(username) > LOGIN_USERNAME_MAX {
        return Err(format!(
            "username must be at most {LOGIN_USERNAME_MAX} characters"
        ));
    }
    if chars(password) > PASSWORD_MAX {
        return Err(format!(
            "password must be at most {PASSWORD_MAX} characters"
        ));
    }
    Ok(())
}

/// A participant identity or a hostId (`field` names it): 1 to
/// [`IDENTITY_MAX`] characters, no white space or control characters.
pub fn check_identity<'a>(field: &str, raw: &'a str) -> Result<&'a str, String> {
    if TOKEN_RE.is_match(raw) {
        Ok(raw)
    } else {
        Err(format!(
            "{field} must be 1 to {IDENTITY_MAX} characters without spaces or control characters"
        ))
    }
}

/// A moderation note: at most [`REASON_MAX`] characters, one line. Returns it
/// trimmed; empty means none.
pub fn check_reason(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    if chars(raw) > REASON_MAX {
        return Err(format!("reason must be at most {REASON_MAX} characters"));
    }
    if !NOTE_RE.is_match(raw) {
        return Err("reason must not contain control characters".into());
    }
    let t = raw.trim();
    Ok((!t.is_empty()).then(|| t.to_string()))
}

/// `value` within `min..=max` (`field` names it).
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("{field} must be between {min} and {max}"));
    }
    Ok(())
}

/// JSON Schemas of the limited fields, for `#[schema(schema_with = …)]` on the
/// contract types: the same constants and patterns as the checks above.
#[cfg(feature = "openapi")]
pub mod schema {
    use super::*;
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
    use utoipa::openapi::{KnownFormat, Object};

    fn string(description: String) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    }

    fn nullable(b: ObjectBuilder, ty: Type) -> ObjectBuilder {
        b.schema_type(SchemaType::from_iter([ty, Type::Null]))
    }

    fn integer(description: String, min: i64, max: i64) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(min))
            .maximum(Some(max))
            .description(Some(description))
    }

    pub fn username() -> Object {
        string(format!(
            "{USERNAME_MIN}–{USERNAME_MAX} characters of `a-z`, `A-Z`, `0-9`, `_`; \
             stored lower-case; white space around it is ignored."
        ))
        .pattern(Some(pattern::username()))
        .build()
    }

    pub fn password() -> Object {
        string(format!("{PASSWORD_MIN}–{PASSWORD_MAX} characters."))
            .min_length(Some(PASSWORD_MIN))
            .max_length(Some(PASSWORD_MAX))
            .build()
    }

    pub fn login_username() -> Object {
        string("Case and white space around it do not matter.".into())
            .max_length(Some(LOGIN_USERNAME_MAX))
            .build()
    }

    pub fn login_password() -> Object {
        string(format!("At most {PASSWORD_MAX} characters."))
            .max_length(Some(PASSWORD_MAX))
            .build()
    }

    fn name(description: String) -> ObjectBuilder {
        nullable(string(description), Type::String)
            .min_length(Some(1))
            .max_length(Some(NAME_MAX))
            .pattern(Some(pattern::name()))
    }

    pub fn display_name() -> Object {
        name(format!(
            "Shown to viewers; defaults to the username. At most {NAME_MAX} characters, one line, \
             something visible in it; invisible characters (zero-width, bidi controls) are \
             removed and white space around it is trimmed."
        ))
        .build()
    }

    pub fn guest_name() -> Object {
        name(format!(
            "Guests only: the shown name (default \"Guest\"). At most {NAME_MAX} characters, one \
             line, something visible in it; invisible characters are removed and white space \
             around it is trimmed. A name that equals or imitates a registered user's is refused."
        ))
        .build()
    }

    fn title_builder() -> ObjectBuilder {
        string(format!(
            "1–{TITLE_MAX} characters, one line, something visible in it; white space around \
             it is trimmed."
        ))
        .min_length(Some(1))
        .max_length(Some(TITLE_MAX))
        .pattern(Some(pattern::line()))
    }

    pub fn title() -> Object {
        title_builder().build()
    }

    fn description_builder() -> ObjectBuilder {
        string(format!(
            "At most {DESCRIPTION_MAX} characters; line breaks and tabs but no other control \
             characters; trimmed; empty clears it."
        ))
        .max_length(Some(DESCRIPTION_MAX))
        .pattern(Some(pattern::text()))
    }

    /// Left out or `null`: keep it.
    pub fn description_nullable() -> Object {
        nullable(description_builder(), Type::String).build()
    }

    /// Left out: keep it (`null` is not a value here).
    pub fn description() -> Object {
        description_builder().build()
    }

    fn identity_builder(description: String) -> ObjectBuilder {
        string(description)
            .min_length(Some(1))
            .max_length(Some(IDENTITY_MAX))
            .pattern(Some(pattern::token()))
    }

    pub fn identity() -> Object {
        identity_builder(format!(
            "The participant identity: a user id, or `guest-…`. 1–{IDENTITY_MAX} characters, \
             no white space or control characters."
        ))
        .build()
    }

    pub fn host_id() -> Object {
        identity_builder(format!(
            "The creator's user id (= room name). 1–{IDENTITY_MAX} characters, no white space \
             or control characters."
        ))
        .build()
    }

    pub fn reason() -> Object {
        nullable(
            string(format!(
                "A note for the creator's list: at most {REASON_MAX} characters, one line; \
                 trimmed, empty means none."
            )),
            Type::String,
        )
        .max_length(Some(REASON_MAX))
        .pattern(Some(pattern::note()))
        .build()
    }

    pub fn duration_secs() -> Object {
        integer(
            format!("{TIMEOUT_SECS_MIN}–{TIMEOUT_SECS_MAX} seconds (7 days)."),
            TIMEOUT_SECS_MIN as i64,
            TIMEOUT_SECS_MAX as i64,
        )
        .build()
    }

    pub fn chat_messages() -> Object {
        integer(
            "Chat messages the studio saw in this session.".into(),
            0,
            CHAT_MESSAGES_MAX,
        )
        .build()
    }

    fn optional_figure(description: &str, max: i64) -> Object {
        nullable(integer(description.into(), 0, max), Type::Integer).build()
    }

    pub fn frames_sent() -> Object {
        optional_figure("Video frames sent, all layers.", FRAMES_MAX)
    }

    pub fn frames_dropped() -> Object {
        optional_figure("Video frames dropped before sending.", FRAMES_MAX)
    }

    pub fn average_bitrate_bps() -> Object {
        optional_figure(
            "Average bitrate over the session, bits per second.",
            BITRATE_BPS_MAX,
        )
    }

    pub fn reconnects() -> Object {
        optional_figure("Reconnects to LiveKit.", RECONNECTS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_re(class: &str) -> Regex {
        pattern::regex(&format!("^[{class}]$"))
    }

    /// The character classes say exactly what the Rust predicates say, for
    /// every code point.
    #[test]
    fn classes_match_the_predicates() {
        let ws = class_re(class::WHITE_SPACE);
        let control = class_re(class::CONTROL);
        let control_but_lines = class_re(class::CONTROL_BUT_LINES);
        let invisible = class_re(class::INVISIBLE);
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = c.encode_utf8(&mut buf);
            assert_eq!(ws.is_match(s), c.is_whitespace(), "{c:?} white space");
            assert_eq!(
                s.trim().is_empty(),
                c.is_whitespace(),
                "{c:?} trim and White_Space agree"
            );
            assert_eq!(control.is_match(s), c.is_control(), "{c:?} control");
            assert_eq!(
                control_but_lines.is_match(s),
                c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
                "{c:?} control but lines"
            );
            assert_eq!(invisible.is_match(s), is_invisible(c), "{c:?} invisible");
        }
    }

    #[test]
    fn checks() {
        assert!(check_title(&"x".repeat(TITLE_MAX)).is_ok());
        assert!(check_title(&"é".repeat(TITLE_MAX + 1)).is_err());
        assert!(check_title("  ").is_err());
        assert!(check_title("").is_err());
        assert!(check_title("a\u{7}b").is_err());
        assert!(check_title("\tab").is_err());
        assert_eq!(check_title("  Hello  ").unwrap(), "Hello");
        assert_eq!(check_description("").unwrap(), None);
        assert_eq!(
            check_description(" a\n\tb \r\n").unwrap().as_deref(),
            Some("a\n\tb")
        );
        assert!(check_description("a\u{0}").is_err());
        assert!(check_description(&"d".repeat(DESCRIPTION_MAX + 1)).is_err());
        assert!(check_name("displayName", &"n".repeat(NAME_MAX + 1)).is_err());
        assert!(check_name("displayName", "\u{200b} \u{202e}").is_err());
        assert!(check_name("displayName", "\u{E0041}").is_err());
        assert_eq!(check_name("g", " al\u{200b}ice ").unwrap(), "alice");
        assert_eq!(check_username(" Alice_1 ").unwrap(), "alice_1");
        assert!(check_username("al").is_err());
        assert!(check_username("al ice").is_err());
        assert!(check_username(&"a".repeat(USERNAME_MAX + 1)).is_err());
        assert!(
            check_username("\u{212a}elvin").is_err(),
            "Kelvin sign is not ASCII"
        );
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_login(&"u".repeat(LOGIN_USERNAME_MAX + 1), "p").is_err());
        assert!(check_identity("identity", "guest-abc").is_ok());
        assert!(check_identity("identity", " abc").is_err());
        assert!(check_identity("identity", "").is_err());
        assert!(check_identity("identity", &"i".repeat(IDENTITY_MAX + 1)).is_err());
        assert_eq!(check_reason(Some("  ")).unwrap(), None);
        assert!(check_reason(Some("a\nb")).is_err());
        assert!(check_range("n", 0, 1, 2).is_err());
        assert!(check_range("n", 2, 1, 2).is_ok());
    }
}
