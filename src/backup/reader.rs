//! Reads the members of an archive from its frames, and carries on past
//! damage: a frame that fails its checksum is dropped by [`FrameReader`];
//! the member it cut is reported as damaged and the reader looks for the
//! next valid ustar header on a block boundary.

use std::collections::HashSet;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use super::frames::{AheadReader, Buf, FrameReader, Frames};
use super::pax::{self, BLOCK, BadHeader, Header};

/// What the reader found next.
pub enum Event {
    /// A member; its data (if any) is read with [`TarReader::read_data`].
    Entry(Header),
    /// Something could not be read. `path` names the member when known.
    Damaged { path: Option<Vec<u8>>, why: String },
    /// The end of the archive (or of what was left of it).
    End,
}

/// Why member data stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("damaged data in the archive")]
    Gap,
    #[error("the archive ends in the middle of this file")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Where the frames come from: decoded here, or ahead in a thread.
enum Source<R: Read> {
    Here(FrameReader<R>),
    Ahead(AheadReader),
}

impl<R: Read> Source<R> {
    fn get(&mut self) -> &mut dyn Frames {
        match self {
            Source::Here(f) => f,
            Source::Ahead(a) => a,
        }
    }
    fn peek(&self) -> &dyn Frames {
        match self {
            Source::Here(f) => f,
            Source::Ahead(a) => a,
        }
    }
}

pub struct TarReader<R: Read> {
    frames: Source<R>,
    /// The frame being read: shared, so member data can be handed on
    /// (to be written and hashed) without a copy.
    cur: Arc<Buf>,
    pos: usize,
    /// Looking for a header after damage.
    resync: bool,
    data_left: u64,
    pad_left: u64,
    ended: bool,
    /// Member names the manifest lists: after damage only headers naming
    /// one of them are trusted (a tar file inside the backup holds valid
    /// headers too).
    known: Option<HashSet<Vec<u8>>>,
}

enum Take {
    Gap,
    Eof,
}

impl<R: Read + Send + 'static> TarReader<R> {
    /// Like [`TarReader::new`], decompressing ahead in a thread of its own
    /// ([`AheadReader`]).
    pub fn ahead(inner: R, known: Option<HashSet<Vec<u8>>>) -> Self {
        Self::with(Source::Ahead(AheadReader::new(inner)), known)
    }
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R, known: Option<HashSet<Vec<u8>>>) -> Self {
        Self::with(Source::Here(FrameReader::new(inner)), known)
    }

    fn with(frames: Source<R>, known: Option<HashSet<Vec<u8>>>) -> Self {
        TarReader {
            frames,
            cur: Arc::new(Buf::new(Vec::new())),
            pos: 0,
            resync: false,
            data_left: 0,
            pad_left: 0,
            ended: false,
            known,
        }
    }

    /// Compressed bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.frames.peek().consumed()
    }

    fn advance(&mut self) -> io::Result<Result<(), Take>> {
        match self.frames.get().next_frame()? {
            None => Ok(Err(Take::Eof)),
            Some(f) => {
                self.cur = Arc::new(f.data);
                self.pos = 0;
                if f.after_gap {
                    self.resync = true;
                    Ok(Err(Take::Gap))
                } else {
                    Ok(Ok(()))
                }
            }
        }
    }

    /// Exactly `n` bytes, across frames; a gap or the end stops it.
    fn take(&mut self, n: usize) -> io::Result<Result<Vec<u8>, Take>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos == self.cur.len() {
                if let Err(t) = self.advance()? {
                    return Ok(Err(t));
                }
                continue;
            }
            let k = (n - out.len()).min(self.cur.len() - self.pos);
            out.extend_from_slice(&self.cur[self.pos..self.pos + k]);
            self.pos += k;
        }
        Ok(Ok(out))
    }

    fn take_block(&mut self) -> io::Result<Result<[u8; BLOCK], Take>> {
        Ok(self
            .take(BLOCK)?
            .map(|v| v.try_into().expect("a block is 512 bytes")))
    }

    /// The next member.
    pub fn next_event(&mut self) -> io::Result<Event> {
        if self.ended {
            return Ok(Event::End);
        }
        // Skip what the caller did not read of the previous member, in
        // place (no copy: a chain restore skips every member a newer link
        // has).
        while self.data_left > 0 && !self.resync {
            match self.data_piece(usize::MAX) {
                Ok(_) => {}
                Err(DataError::Io(e)) => return Err(e),
                Err(_) => break,
            }
        }
        if self.pad_left > 0 && !self.resync {
            if let Err(t) = self.take(self.pad_left as usize)? {
                self.pad_left = 0;
                return Ok(self.lost(t, None));
            }
            self.pad_left = 0;
        }
        self.data_left = 0;
        self.pad_left = 0;
        loop {
            let first = match self.take_block()? {
                Ok(b) => b,
                Err(Take::Eof) => {
                    self.ended = true;
                    if self.resync || self.frames.peek().ended_in_gap() {
                        return Ok(Event::Damaged {
                            path: None,
                            why: "the archive ends early (truncated or damaged at the end)".into(),
                        });
                    }
                    return Ok(Event::Damaged {
                        path: None,
                        why: "the archive ends without its end marker (truncated)".into(),
                    });
                }
                Err(Take::Gap) => continue,
            };
            if self.resync {
                if pax::check_block(&first).is_err() {
                    continue;
                }
                let (cur_save, pos_save) = (self.pos, self.cur.len());
                match self.header_from(first)? {
                    Ok(Some(h)) => {
                        let trusted = self.known.as_ref().is_none_or(|k| k.contains(&h.path));
                        if trusted {
                            self.resync = false;
                            return Ok(Event::Entry(h));
                        }
                        // A header inside someone's data: keep scanning
                        // right after it, when still in the same frame.
                        if self.cur.len() == pos_save {
                            self.pos = cur_save;
                        }
                        self.data_left = 0;
                        self.pad_left = 0;
                        continue;
                    }
                    Ok(None) => continue,
                    Err(_) => continue,
                }
            }
            if first.iter().all(|&b| b == 0) {
                // End marker: two zero blocks (one is accepted as well).
                self.ended = true;
                return Ok(Event::End);
            }
            match self.header_from(first)? {
                Ok(Some(h)) => return Ok(Event::Entry(h)),
                Ok(None) => continue,
                Err(Err2::Bad(e, path)) => {
                    self.resync = true;
                    return Ok(Event::Damaged {
                        path,
                        why: format!("unreadable member header ({e})"),
                    });
                }
                Err(Err2::Take(t)) => return Ok(self.lost(t, None)),
            }
        }
    }

    fn lost(&mut self, t: Take, path: Option<Vec<u8>>) -> Event {
        match t {
            Take::Gap => {
                self.resync = true;
                Event::Damaged {
                    path,
                    why: "damaged data in the archive".into(),
                }
            }
            Take::Eof => {
                self.ended = true;
                Event::Damaged {
                    path,
                    why: "the archive ends early (truncated)".into(),
                }
            }
        }
    }

    /// Decodes a member starting at header block `block` (pax and GNU long
    /// name headers first). `Ok(None)`: a member type that is skipped.
    fn header_from(&mut self, mut block: [u8; BLOCK]) -> io::Result<Result<Option<Header>, Err2>> {
        let mut pax_recs = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let raw = match pax::decode_block(&block) {
                Ok(r) => r,
                Err(e) => return Ok(Err(Err2::Bad(e, None))),
            };
            match raw.flag {
                b'x' | b'g' | b'L' | b'K' => {
                    if raw.size > 64 << 20 {
                        return Ok(Err(Err2::Bad(BadHeader::Field("size"), None)));
                    }
                    let n = raw.size as usize + pax::padding(raw.size);
                    let data = match self.take(n)? {
                        Ok(d) => d,
                        Err(t) => return Ok(Err(Err2::Take(t))),
                    };
                    let data = &data[..raw.size as usize];
                    match raw.flag {
                        b'x' => match pax::pax_records(data) {
                            Ok(r) => pax_recs = r,
                            Err(e) => return Ok(Err(Err2::Bad(e, None))),
                        },
                        b'L' => long_name = Some(trim_nul(data)),
                        b'K' => long_link = Some(trim_nul(data)),
                        _ => {}
                    }
                    block = match self.take_block()? {
                        Ok(b) => b,
                        Err(t) => return Ok(Err(Err2::Take(t))),
                    };
                    continue;
                }
                _ => {}
            }
            let mut raw = raw;
            if let Some(n) = long_name.take() {
                raw.name = n;
            }
            if let Some(l) = long_link.take() {
                raw.link = l;
            }
            let name = raw.name.clone();
            let (mut h, mut stored) = match pax::build(raw, &pax_recs) {
                Ok(Some(x)) => x,
                Ok(None) => {
                    // Unknown member type: skip its data.
                    self.data_left = 0;
                    return Ok(Ok(None));
                }
                Err(e) => return Ok(Err(Err2::Bad(e, Some(name)))),
            };
            let total = stored;
            if h.sparse.is_some() {
                let mut map = Vec::new();
                let (regions, used) = loop {
                    match self.take_block()? {
                        Ok(b) => map.extend_from_slice(&b),
                        Err(t) => return Ok(Err(Err2::Take(t))),
                    }
                    match pax::parse_sparse_map(&map) {
                        Ok(Some(x)) => break x,
                        Ok(None) if map.len() < 1 << 20 => {}
                        Ok(None) | Err(_) => {
                            return Ok(Err(Err2::Bad(
                                BadHeader::Field("sparse map"),
                                Some(h.path),
                            )));
                        }
                    }
                };
                let data: u64 = regions.iter().map(|r| r.1).sum();
                if used as u64 + data != stored || regions.iter().any(|r| r.0 + r.1 > h.size) {
                    return Ok(Err(Err2::Bad(BadHeader::Field("sparse map"), Some(h.path))));
                }
                stored -= used as u64;
                h.sparse = Some(regions);
            }
            if h.kind != pax::Kind::File && h.kind != pax::Kind::HardLink {
                stored = stored.min(total);
            }
            self.data_left = stored;
            self.pad_left = pax::padding(total) as u64;
            if h.kind != pax::Kind::File {
                // Data of other member types is skipped by next_event.
                h.size = 0;
            }
            return Ok(Ok(Some(h)));
        }
    }

    /// Reads member data: for sparse files the data regions one after the
    /// other. Returns 0 at the end of the member.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        match self.data_piece(buf.len())? {
            None => Ok(0),
            Some((frame, r)) => {
                buf[..r.len()].copy_from_slice(&frame[r.clone()]);
                Ok(r.len())
            }
        }
    }

    /// The next piece of member data, at most `max` bytes, as the frame it
    /// lies in and its range there: no copy. `None` at the end of the
    /// member.
    pub fn data_piece(&mut self, max: usize) -> Result<Option<Piece>, DataError> {
        if self.data_left == 0 || self.resync || max == 0 {
            return Ok(None);
        }
        if self.pos == self.cur.len() {
            match self.advance()? {
                Ok(()) => {}
                Err(Take::Gap) => {
                    self.data_left = 0;
                    return Err(DataError::Gap);
                }
                Err(Take::Eof) => {
                    self.data_left = 0;
                    self.ended = true;
                    return Err(DataError::Truncated);
                }
            }
        }
        let n = (max as u64)
            .min(self.data_left)
            .min((self.cur.len() - self.pos) as u64) as usize;
        let r = self.pos..self.pos + n;
        self.pos += n;
        self.data_left -= n as u64;
        Ok(Some((self.cur.clone(), r)))
    }
}

/// Member data in place: the frame it lies in, and where.
pub type Piece = (Arc<Buf>, Range<usize>);

enum Err2 {
    Bad(BadHeader, Option<Vec<u8>>),
    Take(Take),
}

fn trim_nul(d: &[u8]) -> Vec<u8> {
    let end = d.iter().position(|&b| b == 0).unwrap_or(d.len());
    d[..end].to_vec()
}
