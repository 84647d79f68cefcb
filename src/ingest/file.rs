//! JSON Lines from files or stdin (`-`), one raw event per line, read in order.
//!
//! In: paths. Out: `(path, line number, bytes)` for each non-blank line. State: the open reader.

use std::io::{BufRead, BufReader, Read};

/// Lines of one input, numbered from 1; blank lines are skipped.
pub struct Lines {
    pub name: String,
    reader: Box<dyn BufRead>,
    line: u64,
    buf: Vec<u8>,
}

impl Lines {
    /// Open a path, or stdin for `-`.
    pub fn open(path: &str) -> std::io::Result<Lines> {
        let reader: Box<dyn BufRead> = if path == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(path)?,
            ))
        };
        Ok(Lines {
            name: if path == "-" {
                "stdin".into()
            } else {
                path.into()
            },
            reader,
            line: 0,
            buf: Vec::new(),
        })
    }

    pub fn from_reader(name: &str, r: impl Read + 'static) -> Lines {
        Lines {
            name: name.into(),
            reader: Box::new(BufReader::new(r)),
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next non-blank line and its number (the buffer is reused).
    pub fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let t = self.buf.trim_ascii();
            if !t.is_empty() {
                let (s, e) = (t.as_ptr() as usize - self.buf.as_ptr() as usize, t.len());
                return Ok(Some((self.line, &self.buf[s..s + e])));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn blank_lines_are_skipped_and_numbering_follows_the_file() {
        let mut l = Lines::from_reader(
            "t",
            std::io::Cursor::new(b"{\"a\":1}\n\n  \n{\"b\":2}\r\n".to_vec()),
        );
        assert_eq!(
            l.next_line().unwrap().map(|(n, b)| (n, b.to_vec())),
            Some((1, b"{\"a\":1}".to_vec()))
        );
        assert_eq!(
            l.next_line().unwrap().map(|(n, b)| (n, b.to_vec())),
            Some((4, b"{\"b\":2}".to_vec()))
        );
        assert!(l.next_line().unwrap().is_none());
    }
}
