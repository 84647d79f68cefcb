//! Patterns shared by the stages: `*` globs over names, resources and destinations.
//!
//! In: a pattern and a string. Out: whether it matches. State: none.

/// `*` glob match (no other metacharacters), ASCII case-insensitive.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, usize::MAX, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = pi;
            mark = si;
            pi += 1;
        } else if star != usize::MAX {
            pi = star + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob("billing-*", "billing-api"));
        assert!(glob("*notes", "read_billing_notes"));
        assert!(glob("read_*_notes", "read_billing_notes"));
        assert!(glob("s3://corp-*", "S3://corp-sync"));
        assert!(!glob("billing", "billing-api"));
        assert!(glob("*", ""));
    }
}
