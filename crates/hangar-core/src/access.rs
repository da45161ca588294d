//! Authorization's vocabulary: whether a right reads or writes, and what a token's scope admits, one
//! scope type for personal, permanent and OAuth tokens. The rights catalogue and the places rights are
//! granted in (`Context`) live in `apps`; the checks that need the database live in the API's
//! `access` module. Pure rules, with their unit tests beside them.

use crate::apps::right;
pub use crate::apps::Access;
use std::collections::HashSet;

/// The rights granted to an application: (context, right code) pairs.
pub type Grants = HashSet<(String, String)>;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `**`: everything its holder may do.
    All,
    /// `read`: only what reads (rights whose access is `Read`, and safe methods).
    ReadOnly,
    /// A space-separated list of right codes (application tokens).
    Rights(Vec<String>),
}

impl Scope {
    /// An application token's scope: `**`, `read`, or right codes.
    pub fn parse(s: &str) -> Scope {
        match s.trim() {
            "**" => Scope::All,
            "read" => Scope::ReadOnly,
            list => Scope::Rights(list.split_whitespace().map(str::to_string).collect()),
        }
    }

    /// A personal token's scope: only `**` or `read`.
    pub fn parse_personal(s: &str) -> Option<Scope> {
        match Scope::parse(s) {
            Scope::Rights(_) => None,
            scope => Some(scope),
        }
    }

    /// The scope as it is written (and stored).
    pub fn to_text(&self) -> String {
        match self {
            Scope::All => "**".into(),
            Scope::ReadOnly => "read".into(),
            Scope::Rights(codes) => codes.join(" "),
        }
    }

    /// Whether the scope admits the right `code`. A read-only scope admits the rights that only
    /// read, by the catalogue (an unknown right is not admitted).
    pub fn allows(&self, code: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::ReadOnly => right(code).is_some_and(|r| r.access == Access::Read),
            Scope::Rights(codes) => codes.iter().any(|c| c == code),
        }
    }

    pub fn is_everything(&self) -> bool {
        *self == Scope::All
    }

    pub fn is_read_only(&self) -> bool {
        *self == Scope::ReadOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::RIGHTS;

    #[test]
    fn scopes_parse_and_print_back() {
        for text in ["**", "read", "Channel.ViewMessages Space.Files.Write"] {
            assert_eq!(Scope::parse(text).to_text(), text);
        }
        assert_eq!(Scope::parse_personal("**"), Some(Scope::All));
        assert_eq!(Scope::parse_personal("read"), Some(Scope::ReadOnly));
        assert_eq!(Scope::parse_personal("Space.Files.Read"), None);
    }

    #[test]
    fn a_read_only_scope_admits_exactly_the_rights_that_read() {
        let read = Scope::ReadOnly;
        for r in RIGHTS {
            assert_eq!(read.allows(r.code), r.access == Access::Read, "{}", r.code);
        }
        assert!(read.allows("Space.Files.Read"));
        assert!(!read.allows("Space.Files.Write"));
        assert!(!read.allows("Unfurls.Provide"), "providing previews writes");
        // A made-up code that merely looks like reading is not admitted.
        assert!(!read.allows("Space.Files.ReadAndDelete"));
        assert!(!read.allows("NoSuch.View"));
    }

    #[test]
    fn a_list_scope_admits_what_it_lists_and_everything_admits_all() {
        let list = Scope::parse("Channel.ViewMessages Project.Issues.Create");
        assert!(list.allows("Channel.ViewMessages"));
        assert!(list.allows("Project.Issues.Create"));
        assert!(!list.allows("Channel.PostMessages"));
        assert!(!list.is_read_only() && !list.is_everything());
        for r in RIGHTS {
            assert!(Scope::All.allows(r.code));
        }
        assert!(!Scope::parse("").allows("x"));
    }

    #[test]
    fn every_right_is_either_reading_or_writing_as_its_name_says() {
        for r in RIGHTS {
            let looks_like_reading = ["View", "Read"].iter().any(|w| r.code.contains(w));
            assert_eq!(r.access == Access::Read, looks_like_reading, "{}", r.code);
        }
    }
}
