//! Authorization's vocabulary: whether a right reads or writes, and what a token's scope admits, one
//! scope type for personal, permanent and OAuth tokens. The rights catalogue and the places rights are
//! granted in (`Context`) live in `apps`; the checks that need the database live in the API's
//! `access` module. Pure rules, with their unit tests beside them.

pub use crate::apps::Access;
use crate::apps::{Context, ContextKind, RightCode};
use std::collections::HashSet;

/// The rights granted to an application, by the context (its text) they are granted in.
#[derive(Debug, Clone, Default)]
pub struct Grants(HashSet<(String, RightCode)>);

impl Grants {
    pub fn grant(&mut self, context: String, right: RightCode) {
        self.0.insert((context, right));
    }

    /// Whether `right` is granted in `context` or globally.
    pub fn allow(&self, right: RightCode, context: &Context) -> bool {
        [context.text.as_str(), "global"]
            .into_iter()
            .any(|c| self.0.contains(&(c.to_string(), right)))
    }
}

impl FromIterator<(String, RightCode)> for Grants {
    fn from_iter<I: IntoIterator<Item = (String, RightCode)>>(iter: I) -> Self {
        Grants(iter.into_iter().collect())
    }
}

/// One entry of a scope that lists rights: a right, anywhere (`Space.Files.Read`, or Space's
/// `global:Space.Files.Read`) or in one context only (`space:id:team:Space.Files.Read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeItem {
    pub right: RightCode,
    /// None: in every context.
    pub context: Option<Context>,
}

impl ScopeItem {
    /// `RIGHT` or `CONTEXT:RIGHT` (a right code has no `:`, so the right is after the last one).
    pub fn parse(s: &str) -> Option<ScopeItem> {
        match s.rsplit_once(':') {
            None => Some(ScopeItem {
                right: RightCode::parse(s)?,
                context: None,
            }),
            Some((ctx, code)) => {
                let right = RightCode::parse(code)?;
                let context = Context::parse(ctx)?;
                if !context.admits(right.right()) {
                    return None;
                }
                Some(ScopeItem {
                    right,
                    context: (context.kind != ContextKind::Global).then_some(context),
                })
            }
        }
    }

    fn to_text(&self) -> String {
        match &self.context {
            None => self.right.as_str().to_string(),
            Some(c) => format!("{}:{}", c.text, self.right),
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `**`: everything its holder may do.
    All,
    /// `read`: only what reads (rights whose access is `Read`, and safe methods).
    ReadOnly,
    /// A space-separated list of rights, each anywhere or in one context (application tokens).
    Rights(Vec<ScopeItem>),
}

impl Scope {
    /// An application token's scope: `**`, `read`, or rights (an unknown entry admits nothing:
    /// tokens are only issued with known ones).
    pub fn parse(s: &str) -> Scope {
        match s.trim() {
            "**" => Scope::All,
            "read" => Scope::ReadOnly,
            list => Scope::Rights(
                list.split_whitespace()
                    .filter_map(ScopeItem::parse)
                    .collect(),
            ),
        }
    }

    /// A scope as a client asks for it: `**`, `read`, or 1 to 32 rights, each a known right code,
    /// optionally after a context it applies in (`global:Project.Issues.View`,
    /// `project:key:P:Project.Issues.View`, as Space clients write them); None when it names
    /// anything else.
    pub fn parse_requested(s: &str) -> Option<Scope> {
        let s = s.trim();
        let entries: Vec<&str> = s.split_whitespace().collect();
        match Scope::parse(s) {
            Scope::Rights(rights)
                if rights.is_empty() || entries.len() > 32 || rights.len() != entries.len() =>
            {
                None
            }
            scope => Some(scope),
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
            Scope::Rights(items) => items
                .iter()
                .map(ScopeItem::to_text)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Whether the scope admits `right` in `place`. A read-only scope admits the rights that only
    /// read, by the catalogue.
    pub fn allows(&self, right: RightCode, place: &Context) -> bool {
        match self {
            Scope::All => true,
            Scope::ReadOnly => right.access() == Access::Read,
            Scope::Rights(items) => items
                .iter()
                .any(|i| i.right == right && i.context.as_ref().is_none_or(|c| c == place)),
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
        assert_eq!(
            Scope::parse_requested(" Space.Files.Read  Channel.ViewMessages "),
            Some(Scope::parse("Space.Files.Read Channel.ViewMessages"))
        );
        for bad in ["", "Space.Files.Read Nope.Right", "* *"] {
            assert_eq!(Scope::parse_requested(bad), None, "{bad:?}");
        }
        assert_eq!(Scope::parse_requested("read"), Some(Scope::ReadOnly));
    }

    #[test]
    fn a_read_only_scope_admits_exactly_the_rights_that_read() {
        let read = Scope::ReadOnly;
        for r in RIGHTS {
            assert_eq!(
                read.allows(r.id, &Context::global()),
                r.access == Access::Read,
                "{}",
                r.code
            );
        }
        assert!(read.allows(RightCode::ReadFiles, &Context::space("s")));
        assert!(!read.allows(RightCode::WriteFiles, &Context::space("s")));
        assert!(
            !read.allows(RightCode::ProvideUnfurls, &Context::global()),
            "providing previews writes"
        );
    }

    #[test]
    fn a_list_scope_admits_what_it_lists_and_everything_admits_all() {
        let list = Scope::parse("Channel.ViewMessages Project.Issues.Create");
        assert!(list.allows(RightCode::ViewMessages, &Context::channel(1)));
        assert!(list.allows(RightCode::CreateIssues, &Context::project("P")));
        assert!(!list.allows(RightCode::PostMessages, &Context::channel(1)));
        assert!(!list.is_read_only() && !list.is_everything());
        for r in RIGHTS {
            assert!(Scope::All.allows(r.id, &Context::global()));
        }
        // A made-up code that merely looks like reading admits nothing.
        let made_up = Scope::parse("Space.Files.ReadAndDelete NoSuch.View");
        assert!(RIGHTS
            .iter()
            .all(|r| !made_up.allows(r.id, &Context::global())));
    }

    #[test]
    fn space_scopes_name_a_context_before_the_right() {
        let s = Scope::parse_requested(
            "global:Project.Issues.View project:key:P:Project.Issues.Create",
        )
        .unwrap();
        assert_eq!(
            s.to_text(),
            "Project.Issues.View project:key:P:Project.Issues.Create"
        );
        assert!(s.allows(RightCode::ViewIssues, &Context::project("Q")));
        assert!(s.allows(RightCode::CreateIssues, &Context::project("P")));
        assert!(!s.allows(RightCode::CreateIssues, &Context::project("Q")));
        assert!(!s.allows(RightCode::ReadFiles, &Context::space("a")));
        for bad in [
            "nowhere:Project.Issues.View",
            "channel:id:1:Project.Issues.View",
            "global:Nope.Right",
            "project:key::Project.Issues.View",
        ] {
            assert_eq!(Scope::parse_requested(bad), None, "{bad}");
        }
    }

    #[test]
    fn grants_hold_in_their_context_or_globally() {
        let grants: Grants = [
            ("space:id:a".to_string(), RightCode::ReadFiles),
            ("global".to_string(), RightCode::ViewAttachments),
        ]
        .into_iter()
        .collect();
        assert!(grants.allow(RightCode::ReadFiles, &Context::space("a")));
        assert!(!grants.allow(RightCode::ReadFiles, &Context::space("b")));
        assert!(!grants.allow(RightCode::WriteFiles, &Context::space("a")));
        assert!(grants.allow(RightCode::ViewAttachments, &Context::channel(3)));
    }

    #[test]
    fn every_right_is_either_reading_or_writing_as_its_name_says() {
        for r in RIGHTS {
            let looks_like_reading = ["View", "Read"].iter().any(|w| r.code.contains(w));
            assert_eq!(r.access == Access::Read, looks_like_reading, "{}", r.code);
        }
    }
}
