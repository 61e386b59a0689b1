//! Ordering strings as JavaScript's `String.prototype.localeCompare` does under Node's
//! default ICU collation (locale `en-US`, which uses the CLDR root collation: tertiary
//! strength, punctuation not ignored, no numeric ordering).
//!
//! JS Vitra sorts every operation's index changes by path with `localeCompare`, so the order
//! of blocks in the index, and so its hashes, depends on this. Canonically equivalent strings
//! (NFC and NFD forms) compare equal, as in ICU; [`sort_by_locale`] is stable like
//! `Array.prototype.sort`, so equal paths keep their original order.

use icu_collator::options::CollatorOptions;
use icu_collator::{Collator, CollatorBorrowed};
use std::cmp::Ordering;
use std::sync::OnceLock;

fn collator() -> &'static CollatorBorrowed<'static> {
    static COLLATOR: OnceLock<CollatorBorrowed<'static>> = OnceLock::new();
    COLLATOR.get_or_init(|| {
        let locale = icu_locale_core::locale!("en-US");
        Collator::try_new(locale.into(), CollatorOptions::default())
            .expect("the en-US collation data is compiled into icu_collator")
    })
}

/// `a.localeCompare(b)` as Node computes it by default.
pub fn locale_compare(a: &str, b: &str) -> Ordering {
    collator().compare(a, b)
}

/// Sorts items by a string key with [`locale_compare`], stably.
pub fn sort_by_locale<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|x, y| locale_compare(key(x), key(y)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collation_differs_from_byte_order_like_icu() {
        assert_eq!(locale_compare("a", "B"), Ordering::Less);
        assert_eq!(locale_compare("b", "A"), Ordering::Greater);
        assert_eq!(locale_compare("a", "A"), Ordering::Less);
        assert_eq!(locale_compare("é", "f"), Ordering::Less);
        assert_eq!(locale_compare("/counter", "/a"), Ordering::Greater);
    }

    #[test]
    fn canonically_equivalent_strings_are_equal_and_sort_stably() {
        let nfc = "\u{e9}";
        let nfd = "e\u{301}";
        assert_eq!(locale_compare(nfc, nfd), Ordering::Equal);
        let mut v = vec![(nfd, 1), ("z", 0), (nfc, 2)];
        sort_by_locale(&mut v, |p| p.0);
        assert_eq!(v, vec![(nfd, 1), (nfc, 2), ("z", 0)]);
    }
}
