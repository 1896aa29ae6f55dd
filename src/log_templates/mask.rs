//! Tokenising and masking a log message.
//!
//! A message is split on whitespace into tokens. Each token is split further into *pieces*:
//! maximal runs of characters that are not delimiters (`=`, `:`, `,`, `;`, `(`, `)`, `[`,
//! `]`, `{`, `}`, `<`, `>`, `"`, `'`, `|`), with the delimiters kept. A piece is a variable,
//! and becomes `<*>` in the token's masked form, when it looks like a value rather than a
//! word:
//!
//! - it contains a decimal digit (numbers, sizes, durations, versions, hex with digits, ids,
//!   IPs, ports, timestamps, `blk_-123`, `core.114`);
//! - it is a hex number (`0x…`) or a run of 8+ hex digits;
//! - it is a path or URL (contains `/` with a character other than `/` around it, or `://`);
//! - it is an e-mail address (`a@b.c`);
//! - it is `true`, `false` or `null` (values, whatever key they follow).
//!
//! So `uid=0` masks to `uid=<*>`, `[173.234.31.186]` to `[<*>]`, `host.example.com:5070` to
//! `host.example.com:<*>`. Masking looks at bytes only (no regex) so that it costs a few
//! nanoseconds per byte; extra user patterns, when configured, are applied to whole pieces
//! by [`Masker`].
//!
//! A message's tokens are capped at [`MAX_TOKENS`]; what is beyond is one `<*…>` token, so a
//! line of thousands of tokens still gets a template and says it was cut.

use regex::RegexSet;

/// Tokens a message is clustered on; the rest become one [`REST`] token.
pub const MAX_TOKENS: usize = 100;

/// Longest token kept as a word, in bytes.
pub const MAX_TOKEN: usize = 256;

/// The masked form of a variable piece.
pub const VAR: &str = "<*>";

/// The token that stands for everything past [`MAX_TOKENS`].
pub const REST: &str = "<*…>";

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'=' | b':'
            | b','
            | b';'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'<'
            | b'>'
            | b'"'
            | b'\''
            | b'|'
    )
}

/// Is this piece (no delimiters, no whitespace) a value?
pub fn is_variable(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().any(u8::is_ascii_digit) {
        return !is_identifier(b);
    }
    if b.len() > 2 && (b.starts_with(b"0x") || b.starts_with(b"0X")) {
        return true;
    }
    if b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    if b.contains(&b'/') && b.iter().any(|c| *c != b'/') {
        return true;
    }
    if let Some(at) = b.iter().position(|c| *c == b'@')
        && at > 0
        && b[at + 1..].contains(&b'.')
    {
        return true;
    }
    if matches!(p, "true" | "false" | "null" | "TRUE" | "FALSE" | "NULL") {
        return true;
    }
    is_time_word(b) || is_host_name(b)
}

/// A name with a short number at its end (`SOCKS5`, `ssh2`, `eth0`, `md5`): an identifier
/// more often than a value.
fn is_identifier(b: &[u8]) -> bool {
    let letters = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let digits = b.len() - letters;
    letters >= 2 && (1..=2).contains(&digits) && b[letters..].iter().all(u8::is_ascii_digit)
}

/// A size or time unit, with trailing punctuation allowed (`KB,`).
fn is_unit(t: &str) -> bool {
    let w = t.trim_end_matches([',', ';', ')', ']', '.']);
    matches!(
        w,
        "B" | "KB"
            | "MB"
            | "GB"
            | "TB"
            | "KiB"
            | "MiB"
            | "GiB"
            | "TiB"
            | "kB"
            | "bytes"
            | "ms"
            | "us"
            | "µs"
            | "ns"
            | "s"
            | "sec"
            | "secs"
            | "seconds"
            | "min"
            | "mins"
            | "minutes"
            | "h"
            | "hours"
    )
}

/// Day and month names: parts of timestamps.
fn is_time_word(b: &[u8]) -> bool {
    const WORDS: [&[u8]; 19] = [
        b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun", b"Jan", b"Feb", b"Mar", b"Apr",
        b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
    ];
    b.len() == 3 && WORDS.contains(&b)
}

/// `host.example.com`: three or more dot-separated lowercase labels, or two ending in a
/// common top-level domain.
fn is_host_name(b: &[u8]) -> bool {
    const TLDS: [&[u8]; 28] = [
        b"com", b"net", b"org", b"edu", b"gov", b"mil", b"int", b"biz", b"uk", b"de", b"jp", b"cn",
        b"hk", b"pl", b"ru", b"fr", b"br", b"au", b"ca", b"us", b"nl", b"es", b"se", b"kr", b"tw",
        b"eu", b"local", b"lan",
    ];
    let Some(dot) = b.iter().rposition(|c| *c == b'.') else {
        return false;
    };
    let labels = b.iter().filter(|c| **c == b'.').count() + 1;
    b.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && !b.starts_with(b".")
        && !b.ends_with(b".")
        && !b.windows(2).any(|w| w == b"..")
        && (labels >= 3 || TLDS.contains(&&b[dot + 1..]))
}

/// Masks messages into token lists.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    extra: Option<RegexSet>,
}

impl Masker {
    /// A masker with extra patterns: a piece matching any of them is a variable too.
    pub fn with_patterns(patterns: &[String]) -> Result<Masker, regex::Error> {
        Ok(Masker {
            extra: if patterns.is_empty() {
                None
            } else {
                Some(RegexSet::new(patterns)?)
            },
        })
    }

    fn variable(&self, piece: &str) -> bool {
        is_variable(piece) || self.extra.as_ref().is_some_and(|r| r.is_match(piece))
    }

    /// The masked tokens of `message`, appended to `out` (cleared first). Returns whether
    /// the message was cut at [`MAX_TOKENS`].
    pub fn mask(&self, message: &str, out: &mut Vec<String>) -> bool {
        out.clear();
        let mut tokens = message.split_ascii_whitespace();
        for t in tokens.by_ref() {
            if out.len() == MAX_TOKENS {
                out.push(REST.to_string());
                return true;
            }
            // A unit after a value is part of the value (`12 KB`, `3 ms`).
            if out.last().is_some_and(|p| p.ends_with(VAR)) && is_unit(t) {
                let punct = t.trim_start_matches(|c: char| c.is_ascii_alphabetic());
                out.push(format!("{VAR}{punct}"));
                continue;
            }
            out.push(self.mask_token(t));
        }
        false
    }

    /// One token with its variable pieces replaced by `<*>`. A token longer than
    /// [`MAX_TOKEN`] bytes is data (an encoded blob, a dump), not a word: it is a variable.
    pub fn mask_token(&self, token: &str) -> String {
        let b = token.as_bytes();
        if b.len() > MAX_TOKEN {
            return VAR.to_string();
        }
        // Fast path: no delimiter, the whole token is one piece.
        if !b.iter().any(|c| is_delim(*c)) {
            return if self.variable(token) {
                VAR.to_string()
            } else {
                token.to_string()
            };
        }
        let mut out = String::with_capacity(token.len());
        let mut start = 0;
        for (i, c) in b.iter().enumerate() {
            if is_delim(*c) {
                let piece = &token[start..i];
                // An empty `()` or `[]` is an empty value, as `(x)` and `[x]` hold one.
                if piece.is_empty()
                    && i > 0
                    && matches!((b[i - 1], *c), (b'(', b')') | (b'[', b']'))
                {
                    out.push_str(VAR);
                } else {
                    self.push_piece(piece, &mut out);
                }
                out.push(*c as char);
                start = i + 1;
            }
        }
        self.push_piece(&token[start..], &mut out);
        out
    }

    fn push_piece(&self, piece: &str, out: &mut String) {
        if self.variable(piece) {
            // Adjacent variables collapse: `<*><*>` says no more than `<*>`.
            if !out.ends_with(VAR) {
                out.push_str(VAR);
            }
        } else {
            out.push_str(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        let mut out = Vec::new();
        Masker::default().mask(s, &mut out);
        out.join(" ")
    }

    #[test]
    fn masks_values_and_keeps_words() {
        for (line, want) in [
            (
                "PacketResponder 1 for block blk_38865049064139660 terminating",
                "PacketResponder <*> for block <*> terminating",
            ),
            (
                "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
                "authentication failure; logname= uid=<*> euid=<*> tty=NODEVssh ruser= rhost=<*>",
            ),
            (
                "reverse mapping checking getaddrinfo for ns.example.com [173.234.31.186] failed",
                "reverse mapping checking getaddrinfo for <*> [<*>] failed",
            ),
            (
                "CE sym 6, at 0x00e462c0, mask 0x02",
                "CE sym <*>, at <*>, mask <*>",
            ),
            (
                "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
                "workerEnv.init(<*>) ok <*>",
            ),
            (
                "shouldBlockLocation  ret:false",
                "shouldBlockLocation ret:<*>",
            ),
            (
                "mail from a.b@example.org deferred",
                "mail from <*> deferred",
            ),
            ("iar 001064fc dear deadbeef", "iar <*> dear <*>"),
            (
                "Input split: hdfs://10.10.34.11:9000/pjhe/logs/2kSOSP.log:65628+7292",
                "Input split: hdfs:<*>:<*>:<*>",
            ),
            ("", ""),
            // Identifiers with a short number stay; host names, day and month names go.
            (
                "Accepted password ssh2 via eth0 SOCKS5",
                "Accepted password ssh2 via eth0 SOCKS5",
            ),
            (
                "connect to mail.example.org and a.b.c.d",
                "connect to <*> and <*>",
            ),
            (
                "at Sun Jul 10 03:55:15 2005",
                "at <*> <*> <*> <*>:<*>:<*> <*>",
            ),
            ("size 12 KB, took 3 ms", "size <*> <*>, took <*> <*>"),
            (
                "call init() with [] and ok",
                "call init(<*>) with [<*>] and ok",
            ),
            (
                "dfs.DataNode$PacketResponder ok",
                "dfs.DataNode$PacketResponder ok",
            ),
        ] {
            assert_eq!(m(line), want, "{line}");
        }
    }

    #[test]
    fn long_lines_are_cut_and_say_so() {
        let line = "word ".repeat(5000);
        let mut out = Vec::new();
        assert!(Masker::default().mask(&line, &mut out));
        assert_eq!(out.len(), MAX_TOKENS + 1);
        assert_eq!(out.last().map(String::as_str), Some(REST));
    }

    #[test]
    fn extra_patterns_mask_whole_pieces() {
        let m = Masker::with_patterns(&["^user[A-Z]+$".to_string()]).unwrap();
        assert_eq!(m.mask_token("userABC"), "<*>");
        assert_eq!(m.mask_token("name=userXY"), "name=<*>");
        assert_eq!(m.mask_token("username"), "username");
        assert!(Masker::with_patterns(&["(".to_string()]).is_err());
    }
}
