//! Output of an instance: bytes from its stdout/stderr cut into lines, kept in
//! a bounded ring buffer for `nuvol service logs`, and forwarded to the agent
//! log with the instance name in front.

use std::collections::VecDeque;

/// A line longer than this is cut: a service writing binary junk without
/// newlines must not grow the agent's memory.
pub const MAX_LINE: usize = 1024;

/// Splits a byte stream into lines; never holds more than [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `line` for each complete (or overlong) line.
    pub fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(String)) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            let take = bytes.len().min(room);
            match bytes[..take].iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    self.partial.extend_from_slice(&bytes[..nl]);
                    line(self.take());
                    bytes = &bytes[nl + 1..];
                }
                None => {
                    self.partial.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.partial.len() == MAX_LINE {
                        line(self.take());
                    }
                }
            }
        }
    }

    /// What is left without a newline (at exit).
    pub fn flush(&mut self, mut line: impl FnMut(String)) {
        if !self.partial.is_empty() {
            line(self.take());
        }
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let text = String::from_utf8_lossy(&bytes);
        text.strip_suffix('\r').unwrap_or(&text).to_string()
    }
}

/// The last `cap` lines of an instance.
#[derive(Debug)]
pub struct Ring {
    lines: VecDeque<String>,
    cap: usize,
}

impl Ring {
    pub fn new(cap: usize) -> Ring {
        Ring {
            lines: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let skip = self.lines.len().saturating_sub(n);
        self.lines.iter().skip(skip).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut s = LineSplitter::default();
        let mut out = vec![];
        s.feed(b"hel", |l| out.push(l));
        s.feed(b"lo\r\nwor", |l| out.push(l));
        s.feed(b"ld\n", |l| out.push(l));
        assert_eq!(out, ["hello", "world"]);
    }

    #[test]
    fn overlong_line_is_cut_not_buffered() {
        let mut s = LineSplitter::default();
        let mut out = vec![];
        s.feed(&vec![b'x'; MAX_LINE * 2 + 5], |l| out.push(l));
        assert_eq!(out.len(), 2);
        s.flush(|l| out.push(l));
        assert_eq!(out[2].len(), 5);
    }

    #[test]
    fn ring_keeps_the_newest_lines() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i.to_string());
        }
        assert_eq!(r.tail(10), ["2", "3", "4"]);
        assert_eq!(r.tail(1), ["4"]);
    }
}
