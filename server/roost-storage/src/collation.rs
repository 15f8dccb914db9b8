//! How tenant strings compare (R3, §2.8): the rules SQL Server's default collation
//! `SQL_Latin1_General_CP1_CI_AS` gave Mobile Services apps, on both backends.
//!
//! **Order and equality** follow the Unicode Collation Algorithm with CLDR's root order (ICU4X's
//! `icu_collator`) at **secondary strength**: base letters first (primary), then accents (secondary);
//! case and other tertiary differences (`a`/`A`, `ß`/`ss`, `ﬁ`/`fi`, full-width forms) are ignored. So
//! comparison is case-insensitive and accent-sensitive (`'a' eq 'A'`, `'e' ne 'é'`), and accented letters
//! sort beside their base letters: `Amélie` < `American Beauty` (é weighs as e first, then `l` < `r`),
//! `Æon Flux` sorts as "aeon", `Ça` beside `Ca`, `Østerdal` among the o's. Strings the collation calls equal
//! tie, and the insertion order breaks the tie, as everywhere in Roost (R4).
//! Secondary, not tertiary, because SQL Server's CI collations ignored case; not primary, because
//! its AS collations kept accents apart (`resume` and `résumé` are different words).
//!
//! SQLite: [`register`] adds the collation [`roost_odata::sql::SQLITE_COLLATION`] (every string
//! column and its automatic index is declared with it) and the function `roost_fold` to every tenant
//! connection. PostgreSQL: migration 0012 creates the ICU collation `roost.ci_as`
//! (`und-u-ks-level2`, nondeterministic: the same CLDR root order at the same strength) and the
//! function `roost.fold`, the SQL twin of [`fold`].
//!
//! **Substring searches** (`substringof`, `startswith`, `endswith`, `indexof`) cannot use a
//! collation on PostgreSQL 15 (nondeterministic collations refuse LIKE and `strpos`), so both backends
//! compare *folded* strings instead: [`fold`] maps a string to NFKC, full uppercase, full lowercase
//! (root locale), final sigma as sigma. Folded strings are equal where the collation calls letters
//! equal up to case and compatibility forms, and keep composed accented letters whole, so
//! `startswith('AMÉ', …)` finds `Amélie` and `startswith('ame', …)` does not. (The few letters whose
//! case mapping has no composed form, such as `ǰ` and `İ`, fold to a base letter and a combining mark,
//! in which that base letter can be found.)

use icu_collator::options::{CollatorOptions, Strength};
use icu_collator::CollatorBorrowed;
use icu_normalizer::ComposingNormalizerBorrowed;
use roost_odata::sql::{SQLITE_COLLATION, SQLITE_FOLD};
use std::cmp::Ordering;
use std::sync::OnceLock;

fn collator() -> &'static CollatorBorrowed<'static> {
    static C: OnceLock<CollatorBorrowed<'static>> = OnceLock::new();
    C.get_or_init(|| {
        let mut options = CollatorOptions::default();
        options.strength = Some(Strength::Secondary);
        // The root collation's data is compiled into the crate: this cannot fail.
        icu_collator::Collator::try_new(Default::default(), options).expect("the root collation is compiled in")
    })
}

/// Compares two strings as tenant string columns do (secondary strength, CLDR root order).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_ascii(a.as_bytes(), b.as_bytes()).unwrap_or_else(|| collator().compare(a, b))
}

/// The collator's rank of each printable ASCII character (equal for `a` and `A`), 0 for the rest.
fn ascii_ranks() -> &'static [u8; 128] {
    static R: OnceLock<[u8; 128]> = OnceLock::new();
    R.get_or_init(|| {
        let mut chars: Vec<u8> = (0x20..0x7f).collect();
        let one = |b: u8| (b as char).to_string();
        chars.sort_by(|x, y| collator().compare(&one(*x), &one(*y)));
        let mut ranks = [0u8; 128];
        let mut rank = 1u8;
        for (i, c) in chars.iter().enumerate() {
            if i > 0 && collator().compare(&one(chars[i - 1]), &one(*c)) != Ordering::Equal {
                rank += 1;
            }
            ranks[usize::from(*c)] = rank;
        }
        ranks
    })
}

/// The collator's answer from a table, where the strings' printable-ASCII beginnings decide it (ids,
/// most titles): in the root collation each such character is one collation element with a primary
/// weight and the common secondary weight, starts no contraction, and keeps its primary whatever
/// follows (a combining mark adds only a secondary weight). So the first rank difference in those
/// beginnings is the collator's first primary difference; two strings of printable ASCII with equal
/// ranks throughout are equal, and a shorter one of them sorts first.
/// `fast_path_agrees_with_the_collator` checks all of this against the collator. `None` when
/// anything else (a control character, non-ASCII) comes before the answer.
fn compare_ascii(a: &[u8], b: &[u8]) -> Option<Ordering> {
    let ranks = ascii_ranks();
    let rank = |c: Option<&u8>| c.and_then(|c| ranks.get(usize::from(*c))).copied().filter(|r| *r != 0);
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (None, None) => return Some(Ordering::Equal),
            // One ended: the other's next character has a primary weight if it is printable ASCII.
            (None, Some(_)) => return rank(b.get(i)).map(|_| Ordering::Less),
            (Some(_), None) => return rank(a.get(i)).map(|_| Ordering::Greater),
            (Some(_), Some(_)) => match (rank(a.get(i)), rank(b.get(i))) {
                (Some(x), Some(y)) if x != y => return Some(x.cmp(&y)),
                (Some(_), Some(_)) => i += 1,
                _ => return None,
            },
        }
    }
}

/// The folded form substring searches compare (see the module documentation).
///
/// Folded piece by piece: ASCII characters are lower-cased as they are, and each run of other
/// characters goes through [`fold_all`] with the ASCII character before it (a combining mark composes
/// with it). That equals folding the whole string: no composition or canonical reordering crosses an
/// ASCII character that follows, and the one context-dependent mapping of the root locale (final
/// sigma) is undone by mapping `ς` to `σ` (`fold_in_pieces_equals_folding_the_whole` checks it).
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii() && b.get(i + 1).is_none_or(u8::is_ascii) {
            out.push(char::from(b[i].to_ascii_lowercase()));
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len() && !b[i].is_ascii() {
            i += 1;
        }
        out.push_str(&fold_all(&s[start..i]));
    }
    out
}

/// NFKC, full uppercase, full lowercase (root), `ς` as `σ`: the definition `roost.fold` shares.
fn fold_all(s: &str) -> String {
    let root = icu_locale_core::LanguageIdentifier::UNKNOWN;
    let cm = icu_casemap::CaseMapper::new();
    let nfkc = ComposingNormalizerBorrowed::new_nfkc().normalize(s);
    let upper = cm.uppercase_to_string(&nfkc, &root);
    cm.lowercase_to_string(&upper, &root).replace('ς', "σ")
}

/// Adds the collation and `roost_fold` to a tenant connection (every one: a statement over a string
/// column fails on a connection without them).
pub(crate) fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_collation(SQLITE_COLLATION, compare)?;
    conn.create_scalar_function(SQLITE_FOLD, 1, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        Ok(match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Text(t) => Some(fold(&String::from_utf8_lossy(t))),
            // Numbers searched as text, as SQLite's own string functions do.
            other => Some(fold(&ctx.get::<String>(0).unwrap_or_else(|_| format!("{other:?}")))),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_linguistic_case_insensitive_and_accent_sensitive() {
        assert_eq!(compare("Amélie", "American Beauty"), Ordering::Less);
        assert_eq!(compare("apple", "APPLE"), Ordering::Equal);
        assert_ne!(compare("e", "é"), Ordering::Equal);
        assert_eq!(compare("e", "é"), Ordering::Less);
        assert_eq!(compare("Ça", "Cz"), Ordering::Less);
        assert_eq!(compare("Østerdal", "Pa"), Ordering::Less);
        assert_eq!(compare("Østerdal", "Oa"), Ordering::Greater);
        assert_eq!(compare("Æon Flux", "Af"), Ordering::Less);
        assert_eq!(compare("zebra", "Ångström"), Ordering::Greater);
    }

    #[test]
    fn fast_path_agrees_with_the_collator() {
        use proptest::prelude::*;
        let full = |a: &str, b: &str| collator().compare(a, b);
        // Every pair of printable characters, then random strings with shared prefixes.
        for x in 0x20u8..0x7f {
            for y in 0x20u8..0x7f {
                let (a, b) = ((x as char).to_string(), format!("{}{}", y as char, x as char));
                assert_eq!(compare(&a, &b), full(&a, &b), "{a:?} {b:?}");
                let a2 = format!("{a}{a}");
                assert_eq!(compare(&a2, &b), full(&a2, &b), "{a2:?} {b:?}");
            }
        }
        proptest!(ProptestConfig::with_cases(20_000), |(p in "[ -~]{0,4}", a in "[ -~]{0,12}", b in "[ -~]{0,12}")| {
            let (a, b) = (format!("{p}{a}"), format!("{p}{b}"));
            prop_assert_eq!(compare(&a, &b), full(&a, &b), "{:?} {:?}", a, b);
        });
        // A printable-ASCII beginning followed by anything: every letter, digit and sign before every
        // combining mark and a sample of other characters, against strings that differ earlier or not.
        let tails: Vec<String> = (0x300u32..0x370)
            .chain([0x338, 0x20d2, 0x1dc0, 0x0591, 0x093c, 0x0e31, 0x3099, 0x00e9, 0x00df, 0x0130, 0x0131, 0x00b7, 0x02bc, 0x0000, 0x0009, 0x200b, 0xfeff])
            .filter_map(char::from_u32)
            .map(String::from)
            .collect();
        for x in 0x20u8..0x7f {
            for t in &tails {
                for other in ["", "a", "A", "z", "0", " ", "-", "\u{301}"] {
                    let a = format!("{}{t}", x as char);
                    for b in [format!("{}{other}", x as char), format!("{other}{}", x as char), format!("{}", x as char)] {
                        assert_eq!(compare(&a, &b), full(&a, &b), "{a:?} {b:?}");
                        assert_eq!(compare(&b, &a), full(&b, &a), "{b:?} {a:?}");
                    }
                }
            }
        }
        let tail = prop::sample::select(tails);
        proptest!(ProptestConfig::with_cases(20_000), |(p in "[ -~]{0,3}", a in "[ -~]{0,4}", b in "[ -~]{0,4}", ta in tail.clone(), tb in tail.clone(), ua in "[ -~]{0,2}")| {
            let (a, b) = (format!("{p}{a}{ta}{ua}"), format!("{p}{b}{tb}"));
            prop_assert_eq!(compare(&a, &b), full(&a, &b), "{:?} {:?}", a, b);
        });
        // Nothing to decide before a control character or a non-ASCII one.
        assert_eq!(compare_ascii(b"a\tb", b"a\tc"), None);
        assert_eq!(compare_ascii("é".as_bytes(), b"e"), None);
        assert_eq!(compare_ascii("ab".as_bytes(), "aé".as_bytes()), None);
        assert_eq!(compare_ascii("ab".as_bytes(), "cé".as_bytes()), Some(Ordering::Less));
    }

    #[test]
    fn fold_in_pieces_equals_folding_the_whole() {
        use proptest::prelude::*;
        let pieces = prop::sample::select(vec![
            "a",
            "E",
            "i",
            "s",
            "S",
            " ",
            "-",
            "1",
            "é",
            "É",
            "e\u{301}",
            "\u{301}",
            "\u{323}",
            "ß",
            "ẞ",
            "ﬁ",
            "Ａ",
            "Σ",
            "σ",
            "ς",
            "İ",
            "ı",
            "ǰ",
            "Ω",
            "ὒ",
            "ᾳ",
            "Ж",
            "ё",
            "東",
            "ㄱ",
            "각",
            "\u{1100}\u{1161}",
            "ŉ",
            "Ǆ",
            "ǅ",
            "\u{0345}",
            "ﬃ",
            "①",
            "½",
            "Å",
            "Å",
        ]);
        proptest!(ProptestConfig::with_cases(20_000), |(parts in prop::collection::vec(pieces, 0..10))| {
            let s: String = parts.concat();
            prop_assert_eq!(fold(&s), fold_all(&s), "{:?}", s);
        });
    }

    #[test]
    fn fold_ignores_case_and_compatibility_forms_but_keeps_accents() {
        assert_eq!(fold("AMÉLIE"), fold("amélie"));
        assert_ne!(fold("amelie"), fold("amélie"));
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("ΟΔΟΣ"), fold("οδοσ"));
        assert_eq!(fold("ﬁne"), "fine");
        // A decomposed accent composes, so "e" is not found inside "é".
        assert_eq!(fold("e\u{301}"), "é");
        assert!(!fold("Amélie").starts_with(&fold("ame")));
        assert!(fold("Amélie").starts_with(&fold("AMÉ")));
    }
}
