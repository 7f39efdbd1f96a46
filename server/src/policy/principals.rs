//! Principal patterns: exact names, globs (`*`, `?`) and `{attribute}` templates filled
//! from the caller's [`Identity`].

use crate::Identity;

/// Attributes a template may name (besides `claim.NAME`), as authentication sets them.
/// Checked when the policy is compiled so a typo (`{calller}`) is an error at start-up,
/// not a pattern that silently matches nothing.
const KNOWN_ATTRIBUTES: [&str; 8] = [
    "caller",
    "subject",
    "cn",
    "san.email",
    "san.dns",
    "sub",
    "iss",
    "email.local",
];

/// Suffix that takes the part of an attribute before its `@` (`{claim.email.local}`).
const LOCAL_PART: &str = ".local";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Star,
    Question,
    Attribute(String),
}

/// One compiled entry of a policy's `principals`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pattern {
    pieces: Vec<Piece>,
}

/// A pattern with its templates filled in: what a principal is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    Star,
    Question,
}

/// Expanded patterns for one identity.
pub(super) struct Expanded(Vec<Vec<Token>>);

impl Expanded {
    /// Whether `principal` matches any of the patterns.
    pub(super) fn matches(&self, principal: &str) -> bool {
        let text: Vec<char> = principal.chars().collect();
        self.0.iter().any(|pattern| glob(pattern, &text))
    }
}

/// Fills in every pattern's templates from `identity`; a pattern naming a missing (or
/// empty) attribute is dropped, so it matches nothing.
pub(super) fn expand(patterns: &[Pattern], identity: &Identity) -> Expanded {
    Expanded(patterns.iter().filter_map(|p| p.expand(identity)).collect())
}

impl Pattern {
    /// Parses `text`: literal characters, `*` (any run, empty included), `?` (exactly one
    /// character) and `{attribute}`.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches no principal".into());
        }
        if text.chars().any(char::is_control) {
            return Err(format!("pattern {text:?} contains control characters"));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' | '?' | '{' if !literal.is_empty() => {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                _ => {}
            }
            match c {
                '*' => pieces.push(Piece::Star),
                '?' => pieces.push(Piece::Question),
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        match c {
                            '}' => {
                                closed = true;
                                break;
                            }
                            '{' => {
                                return Err(format!("pattern {text:?}: `{{` inside a template"));
                            }
                            _ => name.push(c),
                        }
                    }
                    if !closed {
                        return Err(format!("pattern {text:?}: `{{` without its `}}`"));
                    }
                    check_attribute(&name).map_err(|why| format!("pattern {text:?}: {why}"))?;
                    pieces.push(Piece::Attribute(name));
                }
                '}' => return Err(format!("pattern {text:?}: `}}` without its `{{`")),
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self { pieces })
    }

    fn expand(&self, identity: &Identity) -> Option<Vec<Token>> {
        let mut tokens = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Star => tokens.push(Token::Star),
                Piece::Question => tokens.push(Token::Question),
                Piece::Text(text) => tokens.extend(text.chars().map(Token::Char)),
                // The value is matched literally: a `*` in a claim is not a wildcard, or
                // a caller who controls a claim could widen its own policy.
                Piece::Attribute(name) => {
                    tokens.extend(attribute(identity, name)?.chars().map(Token::Char));
                }
            }
        }
        Some(tokens)
    }
}

fn check_attribute(name: &str) -> Result<(), String> {
    let base = name.strip_suffix(LOCAL_PART).unwrap_or(name);
    let known = |n: &str| {
        KNOWN_ATTRIBUTES.contains(&n) || n.strip_prefix("claim.").is_some_and(|c| !c.is_empty())
    };
    if known(name) || known(base) {
        Ok(())
    } else {
        Err(format!(
            "unknown attribute `{{{name}}}`; known: {}, claim.NAME, each also with {LOCAL_PART} (the part before @)",
            KNOWN_ATTRIBUTES
                .iter()
                .map(|a| format!("{{{a}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// The attribute's value, or for `NAME.local` the part of `NAME` before its `@`; empty
/// values count as missing (`{cn}-admin` must not match `-admin`).
fn attribute<'a>(identity: &'a Identity, name: &str) -> Option<&'a str> {
    let value = match identity.attribute(name) {
        Some(value) => value,
        None => {
            let base = name.strip_suffix(LOCAL_PART)?;
            identity.attribute(base)?.split_once('@')?.0
        }
    };
    (!value.is_empty()).then_some(value)
}

/// Wildcard match, backtracking to the last `*` only: linear in practice, O(n·m) at worst.
fn glob(pattern: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently stands in for up to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(t) {
        match pattern.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::Question) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(expected)) if *expected == c => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|token| *token == Token::Star))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::AuthMethod;

    fn identity(attributes: &[(&str, &str)]) -> Identity {
        Identity {
            caller: "alice".into(),
            policy: "p".into(),
            method: AuthMethod::Oidc,
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn matches(pattern: &str, identity: &Identity, principal: &str) -> bool {
        let pattern = Pattern::parse(pattern).expect("pattern parses");
        expand(&[pattern], identity).matches(principal)
    }

    #[test]
    fn exact_patterns_are_case_sensitive() {
        let id = identity(&[]);
        assert!(matches("alice", &id, "alice"));
        assert!(!matches("alice", &id, "Alice"));
        assert!(!matches("alice", &id, "alice2"));
        assert!(!matches("alice", &id, "alic"));
    }

    #[test]
    fn globs_match_runs_and_single_characters() {
        let id = identity(&[]);
        assert!(matches("dev-*", &id, "dev-"));
        assert!(matches("dev-*", &id, "dev-web-01"));
        assert!(!matches("dev-*", &id, "prod-web"));
        assert!(matches("web-??", &id, "web-01"));
        assert!(!matches("web-??", &id, "web-1"));
        assert!(!matches("web-??", &id, "web-001"));
        assert!(matches("*-*-x", &id, "a-b-c-x"));
        assert!(!matches("*-*-x", &id, "a-x"));
        assert!(matches("*", &id, "anything"));
        assert!(matches("h?ß*", &id, "häßlich"));
        // Not a regex: `.` is a plain character.
        assert!(!matches("a.c", &id, "abc"));
    }

    #[test]
    fn templates_fill_from_the_identity_and_match_literally() {
        let id = identity(&[
            ("caller", "alice"),
            ("claim.email", "a.smith@example.com"),
            ("email.local", "asmith"),
            ("claim.tricky", "*"),
        ]);
        assert!(matches("{caller}", &id, "alice"));
        assert!(!matches("{caller}", &id, "bob"));
        assert!(matches("{caller}-*", &id, "alice-admin"));
        assert!(!matches("{caller}-*", &id, "bob-admin"));
        assert!(matches("{claim.email.local}", &id, "a.smith"));
        assert!(matches("{email.local}", &id, "asmith"));
        assert!(matches("{claim.tricky}", &id, "*"));
        assert!(
            !matches("{claim.tricky}", &id, "root"),
            "a claim's `*` is not a wildcard"
        );
    }

    #[test]
    fn templates_naming_missing_or_empty_attributes_match_nothing() {
        let id = identity(&[("cn", ""), ("claim.email", "no-at-sign")]);
        assert!(!matches("{cn}-admin", &id, "-admin"));
        assert!(!matches("{claim.repository}*", &id, "x"));
        assert!(!matches("{claim.email.local}", &id, "no-at-sign"));
        assert!(!matches("{claim.email.local}*", &id, ""));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "",
            "{caller",
            "caller}",
            "{{caller}}",
            "{}",
            "{calller}",
            "{claim.}",
            "a\nb",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["{sub}", "{san.dns}.example.com", "{claim.x.local}", "?*"] {
            assert!(Pattern::parse(good).is_ok(), "{good:?}");
        }
    }
}
