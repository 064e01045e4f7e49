//! `application/x-www-form-urlencoded` bodies and query strings.
//!
//! The input is untrusted and already bounded by the caller (request size
//! limits); this parser additionally keeps at most [`MAX_FIELDS`] fields, turns
//! invalid percent escapes into literal text and invalid UTF-8 into U+FFFD, and
//! never panics.
//!
//! ```
//! let f = nuvol_page::form::Form::parse("type=http&scope=global&d=a%20b+c");
//! assert_eq!(f.get("d"), Some("a b c"));
//! assert_eq!(f.get("missing"), None);
//! ```

/// More fields than any page form has; the rest are ignored.
pub const MAX_FIELDS: usize = 64;

/// Decoded name/value pairs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    pub fn parse(s: &str) -> Form {
        let fields = s
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_FIELDS)
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        Form { fields }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or `""`.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or("")
    }
}

/// Percent-decodes one component; `+` is a space.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_escapes_stay_literal_and_bad_utf8_is_replaced() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%ff"), "\u{fffd}");
        assert_eq!(decode("%3Cb%3e"), "<b>");
    }

    #[test]
    fn fields_past_the_limit_are_ignored() {
        let many: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        let f = Form::parse(&many.join("&"));
        assert_eq!(f.fields.len(), MAX_FIELDS);
        assert_eq!(f.get("k0"), Some("v"));
        assert_eq!(f.get("k100"), None);
    }

    #[test]
    fn random_bytes_never_panic() {
        // A fixed xorshift stream: the same inputs on every run.
        let mut x: u64 = 0x5eed_f0c4;
        let alphabet = b"%+=&aZ09\xff\xc3\x28 ";
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let s = String::from_utf8_lossy(&bytes);
            let f = Form::parse(&s);
            let _ = f.get("a");
        }
    }

    #[test]
    fn key_without_value_is_empty() {
        let f = Form::parse("a&b=&=c");
        assert_eq!(f.get("a"), Some(""));
        assert_eq!(f.get("b"), Some(""));
        assert_eq!(f.get(""), Some("c"));
    }
}
