//! The compressed layer of an archive: the tar stream cut into chunks of
//! [`CHUNK`] bytes, each compressed on its own into one zstd frame (with
//! content size and XXH64 checksum, RFC 8878 "Frame_Header_Descriptor"), by
//! a pool of threads, written in order.
//!
//! Why independent frames rather than one zstdmt stream: concatenated frames
//! are still one valid `.zst` file (`zstd -d`, `tar -I zstd` read it), the
//! threads scale the same, and a damaged byte costs one frame instead of the
//! rest of the archive: the reader drops the bad frame (its checksum fails),
//! looks for the next frame magic and goes on. Chunks are multiples of 512,
//! so every frame starts on a tar block boundary, where the tar reader can
//! look for the next header.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use zstd::zstd_safe;

/// Uncompressed bytes per frame: the unit of loss on damage.
pub const CHUNK: usize = 4 << 20;
/// A frame's compressed size can exceed its input a little (incompressible
/// data); anything claiming more is damaged.
const MAX_FRAME: usize = CHUNK + (CHUNK >> 7) + 4096;
/// Frame magic number, little endian (RFC 8878 "Magic_Number").
const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A chunk to compress: its sequence number, the chunk buffer and how much
/// of it is data, and a buffer to compress into (both buffers come back
/// with the result to be used again: no allocation, no page faults on
/// fresh memory and no zeroing per chunk).
type Job = (u64, Vec<u8>, usize, Vec<u8>);
/// A compressed chunk: sequence number, frame, and the emptied input.
type Done = (u64, Vec<u8>, Vec<u8>);

/// A chunk on its way to the hashing thread: the job, which bytes of it
/// belong to which file (`(file, start, end)`), and the files that end
/// with it.
struct HashJob {
    job: Job,
    segments: Vec<(u64, usize, usize)>,
    ends: Vec<u64>,
}

/// A file's digests (sha256 and XXH3-128), computed by the hashing thread.
pub type Digest = (u64, super::manifest::Sums);

/// A `Write` that compresses into independent zstd frames on `threads`
/// threads and writes them in order to the inner writer.
pub struct FrameWriter<W: Write> {
    inner: W,
    /// The chunk being filled: always [`CHUNK`] long, `filled` of it data.
    buf: Vec<u8>,
    filled: usize,
    seq: u64,
    next_out: u64,
    pending: std::collections::BTreeMap<u64, Vec<u8>>,
    /// To the hashing thread, which passes each chunk on to the workers.
    jobs: Option<mpsc::SyncSender<HashJob>>,
    results: mpsc::Receiver<io::Result<Done>>,
    digests: mpsc::Receiver<Digest>,
    /// File data in the current chunk, and files ended since it began.
    segments: Vec<(u64, usize, usize)>,
    ends: Vec<u64>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    max_in_flight: usize,
    /// Emptied chunk and frame buffers, to be filled again.
    free_in: Vec<Vec<u8>>,
    free_out: Vec<Vec<u8>>,
    /// Compressed bytes written so far.
    pub written: u64,
}

impl<W: Write> FrameWriter<W> {
    pub fn new(inner: W, level: i32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                std::thread::spawn(move || {
                    let mut c = match zstd::bulk::Compressor::new(level) {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = c.set_parameter(zstd_safe::CParameter::ChecksumFlag(true));
                    loop {
                        let job = match rx.lock() {
                            Ok(g) => g.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, data, len, mut out)) = job else {
                            return;
                        };
                        out.clear();
                        // An empty chunk only carries digests of files
                        // that ended after the last data: no frame.
                        let r = if len == 0 {
                            Ok((seq, out, data))
                        } else {
                            out.reserve(zstd_safe::compress_bound(len));
                            c.compress_to_buffer(&data[..len], &mut out)
                                .map(|_| (seq, out, data))
                        };
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect::<Vec<_>>();
        // The digests of every file's data, in a thread of its own: off the
        // thread that walks and reads, which is the one stage that cannot
        // run in parallel (and under load the one that waits longest for
        // a CPU). Chunks pass through it in order, so a file's bytes are
        // hashed in order; then it hands them to the compressors.
        let (hash_tx, hash_rx) = mpsc::sync_channel::<HashJob>(threads);
        let (dig_tx, dig_rx) = mpsc::channel::<Digest>();
        let hasher = std::thread::spawn(move || {
            let mut open: std::collections::HashMap<u64, super::manifest::BothHasher> =
                Default::default();
            while let Ok(HashJob {
                job,
                segments,
                ends,
            }) = hash_rx.recv()
            {
                for (file, start, end) in segments {
                    open.entry(file).or_default().update(&job.1[start..end]);
                }
                for file in ends {
                    let h = open.remove(&file).unwrap_or_default();
                    if dig_tx.send((file, h.finish())).is_err() {
                        return;
                    }
                }
                if job_tx.send(job).is_err() {
                    return;
                }
            }
        });
        let mut workers = workers;
        workers.push(hasher);
        FrameWriter {
            inner,
            buf: vec![0; CHUNK],
            filled: 0,
            seq: 0,
            next_out: 0,
            pending: Default::default(),
            jobs: Some(hash_tx),
            results: res_rx,
            digests: dig_rx,
            segments: Vec::new(),
            ends: Vec::new(),
            workers,
            in_flight: 0,
            max_in_flight: threads * 2,
            free_in: Vec::new(),
            free_out: Vec::new(),
            written: 0,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        self.submit_always()
    }

    fn submit_always(&mut self) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let fresh = self.free_in.pop().unwrap_or_else(|| vec![0; CHUNK]);
        let data = std::mem::replace(&mut self.buf, fresh);
        let len = std::mem::take(&mut self.filled);
        let out = self.free_out.pop().unwrap_or_default();
        let tx = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("writer finished"))?;
        tx.send(HashJob {
            job: (self.seq, data, len, out),
            segments: std::mem::take(&mut self.segments),
            ends: std::mem::take(&mut self.ends),
        })
        .map_err(|_| io::Error::other("compression threads stopped"))?;
        self.seq += 1;
        self.in_flight += 1;
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, z, data) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("compression threads stopped"))??;
        self.in_flight -= 1;
        self.free_in.push(data);
        self.pending.insert(seq, z);
        while let Some(z) = self.pending.remove(&self.next_out) {
            self.inner.write_all(&z)?;
            self.written += z.len() as u64;
            self.next_out += 1;
            self.free_out.push(z);
        }
        Ok(())
    }

    /// Room for up to `max` more bytes in the current chunk, to be filled
    /// in place (e.g. by `read`) and then kept with [`Self::commit`]:
    /// file data goes into the chunk without a copy through another buffer.
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        let n = (CHUNK - self.filled).min(max);
        &mut self.buf[self.filled..self.filled + n]
    }

    /// Keeps `n` bytes written into the last [`Self::spare`] as data of
    /// `file`, whose digests come back from [`Self::digests`] once
    /// [`Self::end_file`] was called for it.
    pub fn commit_file(&mut self, n: usize, file: u64) -> io::Result<()> {
        if n > 0 {
            self.segments.push((file, self.filled, self.filled + n));
        }
        self.commit(n)
    }

    /// Marks the end of `file`'s data (for a file of no data, its start
    /// too): its digest follows.
    pub fn end_file(&mut self, file: u64) {
        self.ends.push(file);
    }

    /// The file digests computed so far (the rest come from
    /// [`Self::finish`]).
    pub fn digests(&self) -> Vec<Digest> {
        self.digests.try_iter().collect()
    }

    /// Keeps `n` bytes written into the last [`Self::spare`].
    pub fn commit(&mut self, n: usize) -> io::Result<()> {
        assert!(self.filled + n <= CHUNK, "commit beyond the chunk");
        self.filled += n;
        if self.filled == CHUNK {
            self.submit()?;
        }
        Ok(())
    }

    /// Compresses what is left, writes every frame, and returns the inner
    /// writer (not flushed to disk: the caller syncs), the compressed
    /// length and the digests not yet taken with [`Self::digests`].
    pub fn finish(mut self) -> io::Result<(W, u64, Vec<Digest>)> {
        if self.filled > 0 || !self.ends.is_empty() {
            // Files ended since the last chunk get their digests with it
            // (an empty chunk compresses to nothing and is not written).
            self.submit_always()?;
        }
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.inner.flush()?;
        let rest: Vec<Digest> = self.digests.try_iter().collect();
        let FrameWriter { inner, written, .. } = self;
        Ok((inner, written, rest))
    }
}

impl<W: Write> Write for FrameWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK - self.filled).min(data.len());
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.commit(n)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A buffer that goes back to its [`Pool`] when dropped, so a restore's
/// frames reuse memory that is mapped already: a fresh 4 MiB buffer per
/// frame cost a page fault per 4 KiB page, the kernel's zeroing of it, and
/// malloc trimming its arenas (together 4% of a restore's CPU samples).
pub struct Buf {
    data: Vec<u8>,
    home: Option<Pool>,
}

impl Buf {
    /// A buffer of no pool (freed when dropped).
    pub fn new(data: Vec<u8>) -> Self {
        Buf { data, home: None }
    }
}

impl std::ops::Deref for Buf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.data
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(pool) = &self.home
            && let Ok(mut free) = pool.0.lock()
        {
            free.push(std::mem::take(&mut self.data));
        }
    }
}

/// Buffers of one kind, handed out as [`Buf`]s and kept when they come
/// back. It holds no more buffers than were in use at once, which the
/// reader bounds (a few frames ahead).
#[derive(Clone, Default)]
pub struct Pool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Pool {
    /// A buffer from the pool, or `make()` when none is free.
    fn get(&self, make: impl FnOnce() -> Vec<u8>) -> Buf {
        let data = self
            .0
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_else(make);
        Buf {
            data,
            home: Some(self.clone()),
        }
    }
}

/// One decompressed frame.
pub struct Frame {
    pub data: Buf,
    /// Damaged bytes were skipped right before this frame.
    pub after_gap: bool,
}

/// Compressed bytes read from the stream in one go, kept until every frame
/// cut from it is decompressed. Frames are handed out as ranges of it
/// rather than copied out; only a frame cut off at its end is copied, to
/// the start of the next segment.
const SEGMENT: usize = 16 << 20;

/// A frame cut out of the stream, not yet decompressed (or, when its
/// position made it suspect, decompressed already).
struct Raw {
    /// The segment it lies in, and where.
    seg: std::sync::Arc<Buf>,
    at: std::ops::Range<usize>,
    content: usize,
    after_gap: bool,
    /// Compressed bytes consumed once this frame is taken.
    consumed: u64,
    /// `Some` when the cutter had to decompress it to decide where the
    /// next frame starts: `Some(None)` means it failed its checksum.
    decoded: Option<Option<Buf>>,
}

impl Raw {
    fn bytes(&self) -> &[u8] {
        &self.seg[self.at.clone()]
    }
}

/// Decompresses one frame into a buffer of `pool`; `None` when it is
/// damaged (bad block, wrong size or a failed XXH64 checksum).
fn decode(
    dctx: &mut zstd_safe::DCtx<'static>,
    bytes: &[u8],
    content: usize,
    pool: &Pool,
) -> Option<Buf> {
    let mut out = pool.get(|| Vec::with_capacity(CHUNK));
    out.clear();
    out.reserve(content);
    match dctx.decompress(&mut *out, bytes) {
        Ok(n) if n == content => Some(out),
        _ => None,
    }
}

/// Reads frames from a compressed stream, skipping damaged ones.
///
/// Cutting the stream into frames (the frame header and block headers
/// give each frame's length) is kept apart from decompressing them, so
/// [`AheadReader`] can decompress several at once. A frame is trusted to
/// end where its headers say when the next frame's magic (or the end of
/// the stream) follows; otherwise it is decompressed on the spot and, if
/// that fails, the search for the next frame starts right after its first
/// byte, as a damaged length may have swallowed good frames.
pub struct FrameReader<R: Read> {
    inner: R,
    /// The segment being cut: `seg[..end]` was read, `seg[pos..end]` not
    /// yet cut. Its buffer is always fully initialized (zeroed when made),
    /// so reads go straight into it.
    seg: std::sync::Arc<Buf>,
    pos: usize,
    end: usize,
    seg_size: usize,
    segs: Pool,
    frames: Pool,
    eof: bool,
    dctx: zstd_safe::DCtx<'static>,
    gap: bool,
    /// Compressed bytes consumed, for progress.
    pub consumed: u64,
    /// Compressed bytes skipped as damaged.
    pub skipped: u64,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_segment(inner, SEGMENT)
    }

    /// With segments of `size` bytes; at least room for two frames and
    /// what [`Self::next_raw`] looks at after one.
    fn with_segment(inner: R, size: usize) -> Self {
        FrameReader {
            inner,
            seg: std::sync::Arc::new(Buf::new(Vec::new())),
            pos: 0,
            end: 0,
            seg_size: size.max(2 * (MAX_FRAME + 64 + MAGIC.len())),
            segs: Pool::default(),
            frames: Pool::default(),
            eof: false,
            dctx: zstd_safe::DCtx::create(),
            gap: false,
            consumed: 0,
            skipped: 0,
        }
    }

    /// The bytes read and not yet cut.
    fn avail(&self) -> &[u8] {
        &self.seg[self.pos..self.end]
    }

    /// Makes at least `want` bytes available from `pos` unless at EOF:
    /// when the segment has fewer left, the rest of it is copied to the
    /// start of a new segment, which is then filled from the stream.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        if self.eof || self.end - self.pos >= want {
            return Ok(());
        }
        let size = self.seg_size;
        let mut next = self.segs.get(|| vec![0; size]);
        let left = self.end - self.pos;
        next[..left].copy_from_slice(&self.seg[self.pos..self.end]);
        let mut end = left;
        // Filled to the end, so that the next copy is a long way off: a
        // segment is only written while no frame of it is out.
        while end < next.len() {
            match self.inner.read(&mut next[end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The stream breaks here (an age chunk failed its
                    // tag, the connection dropped): what came before is
                    // still good, the rest is lost like a truncation.
                    log::warn!("archive unreadable after {} bytes: {e}", self.consumed);
                    self.eof = true;
                    self.gap = true;
                    break;
                }
            }
        }
        self.seg = std::sync::Arc::new(next);
        self.pos = 0;
        self.end = end;
        Ok(())
    }

    /// Skips to the next frame magic after the current position.
    fn resync(&mut self) -> io::Result<()> {
        self.gap = true;
        self.pos += 1;
        loop {
            self.fill(MAX_FRAME)?;
            self.pos = self.pos.min(self.end);
            if let Some(i) = self.avail().windows(4).position(|w| w == MAGIC) {
                self.pos += i;
                break;
            }
            if self.eof {
                self.pos = self.end;
                break;
            }
            // Keep the last 3 bytes: a magic may straddle the refill.
            self.pos = self.end.saturating_sub(3).max(self.pos);
        }
        Ok(())
    }

    /// The next frame's bytes, or `None` at the end of the stream.
    fn next_raw(&mut self) -> io::Result<Option<Raw>> {
        loop {
            // The frame, and the next frame's magic after it.
            self.fill(MAX_FRAME + 64 + MAGIC.len())?;
            if self.pos >= self.end {
                return Ok(None);
            }
            let avail = self.avail();
            if !avail.starts_with(&MAGIC) {
                self.skipped += 1;
                self.resync()?;
                continue;
            }
            let size = match zstd_safe::find_frame_compressed_size(avail) {
                Ok(n) if n <= MAX_FRAME + 64 => n,
                // Incomplete (truncated) or nonsense sizes: damaged.
                _ => {
                    self.resync()?;
                    continue;
                }
            };
            let content = match zstd_safe::get_frame_content_size(&avail[..size]) {
                Ok(Some(n)) if n as usize <= CHUNK => n as usize,
                _ => {
                    self.resync()?;
                    continue;
                }
            };
            let next = &avail[size..];
            let trusted = next.starts_with(&MAGIC) || (next.is_empty() && self.eof);
            let at = self.pos..self.pos + size;
            let decoded = if trusted {
                None
            } else {
                match decode(&mut self.dctx, &self.seg[at.clone()], content, &self.frames) {
                    Some(d) => Some(Some(d)),
                    None => {
                        self.skipped += size as u64;
                        self.resync()?;
                        continue;
                    }
                }
            };
            self.pos += size;
            self.consumed += size as u64;
            return Ok(Some(Raw {
                seg: self.seg.clone(),
                at,
                content,
                after_gap: std::mem::take(&mut self.gap),
                consumed: self.consumed,
                decoded,
            }));
        }
    }

    /// The next good frame, or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut gap = false;
        loop {
            let Some(mut raw) = self.next_raw()? else {
                // A damaged last frame: the stream ends in a gap.
                self.gap |= gap;
                return Ok(None);
            };
            let data = match raw.decoded.take() {
                Some(d) => d,
                None => decode(&mut self.dctx, raw.bytes(), raw.content, &self.frames),
            };
            match data {
                Some(data) => {
                    return Ok(Some(Frame {
                        data,
                        after_gap: raw.after_gap || gap,
                    }));
                }
                None => {
                    self.skipped += raw.at.len() as u64;
                    gap = true;
                }
            }
        }
    }

    /// Whether the stream ended inside a damaged region (trailing damage or
    /// truncation).
    pub fn ended_in_gap(&self) -> bool {
        self.gap
    }
}

/// What a frame source hands the tar reader: [`FrameReader`] itself, or
/// [`AheadReader`] decompressing on threads of its own.
pub trait Frames {
    /// The next good frame, or `None` at the end of the stream.
    fn next_frame(&mut self) -> io::Result<Option<Frame>>;
    /// Whether the stream ended inside a damaged region.
    fn ended_in_gap(&self) -> bool;
    /// Compressed bytes consumed so far.
    fn consumed(&self) -> u64;
}

impl<R: Read> Frames for FrameReader<R> {
    fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        FrameReader::next_frame(self)
    }
    fn ended_in_gap(&self) -> bool {
        FrameReader::ended_in_gap(self)
    }
    fn consumed(&self) -> u64 {
        self.consumed
    }
}

/// From the threads to [`AheadReader`]: frame `seq` (its data, `None` when
/// damaged), or the end after `frames` frames.
enum Ahead {
    Frame {
        seq: u64,
        data: Option<Buf>,
        after_gap: bool,
        consumed: u64,
    },
    End {
        frames: u64,
        result: io::Result<()>,
        gap: bool,
        consumed: u64,
    },
}

/// A [`FrameReader`] a few frames ahead of its reader: one thread cuts the
/// stream into frames and `threads` decompress them, since frames are
/// independent; [`Frames::next_frame`] hands them out in order. A restore
/// spends its time decompressing, hashing and writing files, and only the
/// first can be spread over every core this way.
pub struct AheadReader {
    rx: mpsc::Receiver<Ahead>,
    /// One token per frame cut and not yet handed out: at most a few
    /// frames (4 MiB each) wait in memory.
    tokens: mpsc::Receiver<()>,
    pending: std::collections::BTreeMap<u64, (Option<Buf>, bool, u64)>,
    next: u64,
    /// The end, once the cutter sent it: frame count, result, gap.
    end: Option<(u64, Option<io::Error>, bool, u64)>,
    /// A damaged frame was dropped since the last frame handed out.
    lost: bool,
    consumed: u64,
    gap: bool,
    done: bool,
    threads: Vec<JoinHandle<()>>,
}

impl AheadReader {
    pub fn new<R: Read + Send + 'static>(inner: R) -> Self {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_threads(inner, workers)
    }

    pub fn with_threads<R: Read + Send + 'static>(inner: R, workers: usize) -> Self {
        Self::with_reader(FrameReader::new(inner), workers)
    }

    fn with_reader<R: Read + Send + 'static>(mut r: FrameReader<R>, workers: usize) -> Self {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Ahead>();
        let (token_tx, tokens) = mpsc::sync_channel::<()>(2 * workers + 2);
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Raw)>(workers);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let mut threads: Vec<JoinHandle<()>> = (0..workers)
            .map(|_| {
                let jobs = job_rx.clone();
                let tx = tx.clone();
                let pool = r.frames.clone();
                std::thread::spawn(move || {
                    let mut dctx = zstd_safe::DCtx::create();
                    loop {
                        let job = match jobs.lock() {
                            Ok(g) => g.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, raw)) = job else { return };
                        let data = decode(&mut dctx, raw.bytes(), raw.content, &pool);
                        let msg = Ahead::Frame {
                            seq,
                            data,
                            after_gap: raw.after_gap,
                            consumed: raw.consumed,
                        };
                        // Before waiting on the channel: the segment goes
                        // back to the pool once its last frame is
                        // decompressed.
                        drop(raw);
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        threads.push(std::thread::spawn(move || {
            let mut seq = 0u64;
            let result = loop {
                // Blocks while enough frames wait: the reader is behind.
                if token_tx.send(()).is_err() {
                    return;
                }
                match r.next_raw() {
                    Ok(Some(mut raw)) => {
                        let sent = match raw.decoded.take() {
                            Some(data) => tx
                                .send(Ahead::Frame {
                                    seq,
                                    data,
                                    after_gap: raw.after_gap,
                                    consumed: raw.consumed,
                                })
                                .is_ok(),
                            None => job_tx.send((seq, raw)).is_ok(),
                        };
                        if !sent {
                            return;
                        }
                        seq += 1;
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            let _ = tx.send(Ahead::End {
                frames: seq,
                result,
                gap: r.ended_in_gap(),
                consumed: r.consumed,
            });
        }));
        AheadReader {
            rx,
            tokens,
            pending: Default::default(),
            next: 0,
            end: None,
            lost: false,
            consumed: 0,
            gap: false,
            done: false,
            threads,
        }
    }
}

impl Frames for AheadReader {
    fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some((data, after_gap, consumed)) = self.pending.remove(&self.next) {
                self.next += 1;
                self.consumed = consumed;
                let _ = self.tokens.recv();
                match data {
                    Some(data) => {
                        return Ok(Some(Frame {
                            data,
                            after_gap: after_gap || std::mem::take(&mut self.lost),
                        }));
                    }
                    None => {
                        self.lost = true;
                        continue;
                    }
                }
            }
            if let Some((frames, err, gap, consumed)) = &mut self.end
                && *frames == self.next
            {
                self.done = true;
                self.consumed = *consumed;
                self.gap = *gap || self.lost;
                return match err.take() {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
            match self.rx.recv() {
                Ok(Ahead::Frame {
                    seq,
                    data,
                    after_gap,
                    consumed,
                }) => {
                    self.pending.insert(seq, (data, after_gap, consumed));
                }
                Ok(Ahead::End {
                    frames,
                    result,
                    gap,
                    consumed,
                }) => self.end = Some((frames, result.err(), gap, consumed)),
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the archive decoding threads stopped"));
                }
            }
        }
    }
    fn ended_in_gap(&self) -> bool {
        self.gap
    }
    fn consumed(&self) -> u64 {
        self.consumed
    }
}

impl Drop for AheadReader {
    fn drop(&mut self) {
        // Unblocks the cutter waiting for a token (and so the workers
        // waiting for jobs), then waits for them: the input (a file, an
        // ssh process) is closed when this returns.
        let (_, dead) = mpsc::sync_channel(0);
        self.tokens = dead;
        let (_, dead) = mpsc::channel();
        self.rx = dead;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` bytes, every `every`-th one random, the others `a`.
    fn bytes(n: usize, every: usize) -> Vec<u8> {
        let mut x: u64 = 1;
        (0..n)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % every == 0 {
                    (x >> 56) as u8
                } else {
                    b'a'
                }
            })
            .collect()
    }

    fn data(n: usize) -> Vec<u8> {
        bytes(n, 3)
    }

    fn frames_of(z: &[u8]) -> (Vec<Frame>, bool) {
        let mut r = FrameReader::new(z);
        let mut v = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            v.push(f);
        }
        let g = r.ended_in_gap();
        (v, g)
    }

    #[test]
    fn frames_decode_with_zstd_and_in_order() {
        let input = data(3 * CHUNK + 1000);
        let mut w = FrameWriter::new(Vec::new(), 3, 2);
        w.write_all(&input).unwrap();
        let (z, n, _) = w.finish().unwrap();
        assert_eq!(n as usize, z.len());
        // A plain zstd decoder reads the concatenated frames as one stream.
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), input);
        let (f, gap) = frames_of(&z);
        assert_eq!(f.len(), 4);
        assert!(!gap);
        assert_eq!(f.concat_data(), input);
    }

    trait Concat {
        fn concat_data(&self) -> Vec<u8>;
    }
    impl Concat for Vec<Frame> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|f| f.data.iter().copied()).collect()
        }
    }

    #[test]
    fn a_flipped_byte_costs_one_frame() {
        let input = data(3 * CHUNK);
        let mut w = FrameWriter::new(Vec::new(), 3, 2);
        w.write_all(&input).unwrap();
        let (mut z, _, _) = w.finish().unwrap();
        let mid = z.len() / 2;
        z[mid] ^= 0x55;
        let (f, _) = frames_of(&z);
        assert_eq!(f.len(), 2);
        assert!(!f[0].after_gap);
        assert!(f[1].after_gap);
        assert_eq!(f[0].data[..], input[..CHUNK]);
        assert_eq!(f[1].data[..], input[2 * CHUNK..]);
    }

    #[test]
    fn reading_ahead_gives_the_same_frames() {
        let input = data(3 * CHUNK + 77);
        let mut w = FrameWriter::new(Vec::new(), 3, 2);
        w.write_all(&input).unwrap();
        let (mut z, _, _) = w.finish().unwrap();
        let mid = z.len() / 2;
        z[mid] ^= 0x55;
        let (want, want_gap) = frames_of(&z);
        let mut a = AheadReader::new(std::io::Cursor::new(z.clone()));
        let mut got = Vec::new();
        while let Some(f) = a.next_frame().unwrap() {
            got.push(f);
        }
        assert_eq!(a.next_frame().unwrap().map(|f| f.data.to_vec()), None);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.data[..], g.after_gap), (&w.data[..], w.after_gap));
        }
        assert_eq!(a.ended_in_gap(), want_gap);
        assert_eq!(a.consumed(), FrameReader::new(&z[..]).consumed_all());
        // Dropped before the end: the thread stops.
        let mut b = AheadReader::new(std::io::Cursor::new(z));
        b.next_frame().unwrap();
        drop(b);
    }

    /// `input` as frames, compressed on 2 threads.
    fn compressed(input: &[u8]) -> Vec<u8> {
        let mut w = FrameWriter::new(Vec::new(), 3, 2);
        w.write_all(input).unwrap();
        w.finish().unwrap().0
    }

    /// A damaged magic number of the second frame: the first one, whose
    /// end no longer meets a magic, is checked by decompressing it and
    /// kept; the second is lost; the third follows a gap. The same with
    /// frames decompressed ahead on 1 and 3 threads.
    #[test]
    fn a_damaged_magic_costs_its_own_frame_only() {
        let input = data(3 * CHUNK);
        let mut z = compressed(&input);
        let first = zstd_safe::find_frame_compressed_size(&z).unwrap();
        z[first + 1] ^= 0xff;
        let (f, gap) = frames_of(&z);
        assert_eq!(f.len(), 2);
        assert!(!gap);
        assert_eq!((f[0].after_gap, f[1].after_gap), (false, true));
        assert_eq!(f[0].data[..], input[..CHUNK]);
        assert_eq!(f[1].data[..], input[2 * CHUNK..]);
        for threads in [1, 3] {
            let mut a = AheadReader::with_threads(std::io::Cursor::new(z.clone()), threads);
            let mut got = Vec::new();
            while let Some(f) = a.next_frame().unwrap() {
                got.push((f.data.to_vec(), f.after_gap));
            }
            assert_eq!(got.len(), 2, "{threads} threads");
            assert_eq!(got[1], (input[2 * CHUNK..].to_vec(), true));
            assert!(!a.ended_in_gap());
        }
    }

    /// A damaged last frame: the stream ends in a gap, read here or ahead.
    #[test]
    fn a_damaged_last_frame_ends_in_a_gap() {
        let input = data(2 * CHUNK);
        let mut z = compressed(&input);
        let n = z.len();
        z[n - 10] ^= 0x55;
        let (f, gap) = frames_of(&z);
        assert_eq!((f.len(), gap), (1, true));
        let mut a = AheadReader::with_threads(std::io::Cursor::new(z), 2);
        assert!(a.next_frame().unwrap().is_some());
        assert!(a.next_frame().unwrap().is_none());
        assert!(a.ended_in_gap());
    }

    impl<R: Read> FrameReader<R> {
        fn consumed_all(mut self) -> u64 {
            while self.next_frame().unwrap().is_some() {}
            self.consumed
        }
    }

    /// Noise: frames as long as their chunks, so segments fill up fast.
    fn noise(n: usize) -> Vec<u8> {
        bytes(n, 1)
    }

    /// Frames cut off at the end of a segment are carried over to the
    /// next one, read here or ahead, with damage on the way too.
    #[test]
    fn frames_across_segments() {
        let input = noise(6 * CHUNK + 999);
        let z = compressed(&input);
        // The smallest segment: two frames and a bit, so nearly every
        // frame is carried over.
        let read = |z: &[u8]| {
            let mut r = FrameReader::with_segment(std::io::Cursor::new(z.to_vec()), 0);
            let mut v = Vec::new();
            while let Some(f) = r.next_frame().unwrap() {
                v.push((f.data.to_vec(), f.after_gap));
            }
            (v, r.ended_in_gap())
        };
        let ahead = |z: &[u8]| {
            let r = FrameReader::with_segment(std::io::Cursor::new(z.to_vec()), 0);
            let mut a = AheadReader::with_reader(r, 2);
            let mut v = Vec::new();
            while let Some(f) = a.next_frame().unwrap() {
                v.push((f.data.to_vec(), f.after_gap));
            }
            (v, a.ended_in_gap())
        };
        for get in [&read as &dyn Fn(&[u8]) -> _, &ahead] {
            let (f, gap) = get(&z);
            assert_eq!(f.len(), 7);
            assert!(!gap);
            let all: Vec<u8> = f.iter().flat_map(|(d, _)| d.iter().copied()).collect();
            assert_eq!(all, input);
        }
        // The fourth frame's magic damaged: frames 3 (checked by
        // decompressing it) and 5 on are kept, the fourth is lost.
        let mut bad = z.clone();
        let mut at = 0;
        for _ in 0..3 {
            at += zstd_safe::find_frame_compressed_size(&bad[at..]).unwrap();
        }
        bad[at + 1] ^= 0xff;
        for get in [&read as &dyn Fn(&[u8]) -> _, &ahead] {
            let (f, gap) = get(&bad);
            assert!(!gap);
            assert_eq!(f.len(), 6);
            assert_eq!(f[2], (input[2 * CHUNK..3 * CHUNK].to_vec(), false));
            assert_eq!(f[3], (input[4 * CHUNK..5 * CHUNK].to_vec(), true));
            assert_eq!(f[5].0, input[6 * CHUNK..]);
        }
    }

    #[test]
    fn truncation_keeps_complete_frames() {
        let input = data(2 * CHUNK);
        let mut w = FrameWriter::new(Vec::new(), 3, 1);
        w.write_all(&input).unwrap();
        let (z, _, _) = w.finish().unwrap();
        let (f, gap) = frames_of(&z[..z.len() - 100]);
        assert_eq!(f.len(), 1);
        assert!(gap);
    }
}
