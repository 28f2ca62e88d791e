//! RFC 4571 framing: on a TCP connection every datagram (STUN, DTLS, SRTP) travels behind a
//! two-byte big-endian length. This is the whole of it, sans-IO: the connection task reads
//! into [`FrameDecoder::space`], and takes whole frames out with [`FrameDecoder::next_frame`].
//!
//! What holds on untrusted input: a frame is at most [`MAX_FRAME`] bytes (a datagram's
//! worth, as the UDP inbox reads); a longer one, or an empty one, is an error that closes the
//! connection, found as soon as its two length bytes are in, before its body is read. The
//! buffer is fixed and allocated once per connection; a read never grows it, and nothing
//! here can panic on any byte sequence.

use thiserror::Error;

use crate::media::inbox::MAX_DATAGRAM;

/// Largest frame a client may send: the largest datagram the UDP path reads.
pub const MAX_FRAME: usize = MAX_DATAGRAM;
/// The length prefix.
const PREFIX: usize = 2;
/// Room for two whole frames, so a compaction is needed at most once per frame.
const CAPACITY: usize = 2 * (PREFIX + MAX_FRAME);

/// Why a byte stream is not RFC 4571 frames we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("a frame of {0} bytes is longer than {MAX_FRAME}")]
    Oversize(usize),
    #[error("an empty frame")]
    Empty,
}

/// Reassembles frames from reads of any size (a read may carry half a length prefix, or
/// several frames and the start of the next).
pub struct FrameDecoder {
    buf: Box<[u8; CAPACITY]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder").field("buffered", &(self.end - self.start)).finish()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self { buf: Box::new([0; CAPACITY]), start: 0, end: 0 }
    }

    /// Where the next read goes; never empty. Moves a partial frame to the front first if
    /// the tail has no room left (a partial frame is shorter than `CAPACITY / 2`, as
    /// `next_frame` refuses longer ones before this is called again).
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == CAPACITY {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into `space()`.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(CAPACITY);
    }

    /// The next whole frame, if one is buffered. Its bytes stay valid until the next call to
    /// `space` or `next_frame`. An error is final: the stream is out of step or hostile.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FramingError> {
        let buffered = &self.buf[self.start..self.end];
        let &[hi, lo, ..] = buffered else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_FRAME {
            return Err(FramingError::Oversize(len));
        }
        if len == 0 {
            return Err(FramingError::Empty);
        }
        if buffered.len() < PREFIX + len {
            return Ok(None);
        }
        let frame = self.start + PREFIX..self.start + PREFIX + len;
        self.start = frame.end;
        Ok(self.buf.get(frame))
    }

    /// Bytes read but not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

/// Append `datagram` to `out` as one frame. Err (and nothing appended) if it cannot be one.
pub fn encode_frame(out: &mut Vec<u8>, datagram: &[u8]) -> Result<(), FramingError> {
    let len = u16::try_from(datagram.len()).map_err(|_| FramingError::Oversize(datagram.len()))?;
    if len == 0 {
        return Err(FramingError::Empty);
    }
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(datagram);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(datagrams: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for d in datagrams {
            encode_frame(&mut out, d).expect("test datagrams are framable");
        }
        out
    }

    /// Feed `stream` in reads of the given sizes (cycled); collect frames until an error.
    fn decode_in_reads(stream: &[u8], reads: &[usize]) -> (Vec<Vec<u8>>, Option<FramingError>) {
        let mut decoder = FrameDecoder::new();
        let (mut got, mut at, mut i) = (Vec::new(), 0, 0);
        while at < stream.len() {
            let space = decoder.space();
            let n = reads[i % reads.len()].min(space.len()).min(stream.len() - at);
            space[..n].copy_from_slice(&stream[at..at + n]);
            decoder.filled(n);
            at += n;
            i += 1;
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => got.push(f.to_vec()),
                    Ok(None) => break,
                    Err(e) => return (got, Some(e)),
                }
            }
        }
        (got, None)
    }

    fn datagrams() -> Vec<Vec<u8>> {
        (0..40).map(|i| vec![i as u8; 1 + (i * 97) % MAX_FRAME]).collect()
    }

    #[test]
    fn frames_split_across_reads_of_any_size_come_out_whole_and_in_order() {
        let sent = datagrams();
        let stream = frames_of(&sent);
        for reads in [&[1][..], &[2], &[3, 1], &[7, 1500, 2], &[MAX_FRAME + 2], &[CAPACITY], &[1, CAPACITY]] {
            let (got, err) = decode_in_reads(&stream, reads);
            assert_eq!(err, None, "reads {reads:?}");
            assert_eq!(got, sent, "reads {reads:?}");
        }
    }

    #[test]
    fn a_frame_of_the_largest_datagram_fits_and_one_byte_more_is_refused_from_its_prefix() {
        let (got, err) = decode_in_reads(&frames_of(&[vec![5; MAX_FRAME]]), &[100]);
        assert_eq!((got.len(), err), (1, None));
        // Only the prefix has arrived: refused before any body is read.
        let prefix = ((MAX_FRAME + 1) as u16).to_be_bytes();
        let (got, err) = decode_in_reads(&prefix, &[2]);
        assert_eq!((got.len(), err), (0, Some(FramingError::Oversize(MAX_FRAME + 1))));
        let (_, err) = decode_in_reads(&[0xFF, 0xFF, 1, 2, 3], &[5]);
        assert_eq!(err, Some(FramingError::Oversize(0xFFFF)));
    }

    #[test]
    fn frames_before_garbage_are_kept_and_the_garbage_ends_the_stream() {
        let mut stream = frames_of(&[b"stun".to_vec(), b"dtls".to_vec()]);
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (got, err) = decode_in_reads(&stream, &[3]);
        assert_eq!(got, vec![b"stun".to_vec(), b"dtls".to_vec()]);
        // "GE" read as a length: 0x4745 = 18245 bytes.
        assert_eq!(err, Some(FramingError::Oversize(0x4745)));
        let (got, err) = decode_in_reads(&[0, 0, 9, 9], &[4]);
        assert_eq!((got.len(), err), (0, Some(FramingError::Empty)));
    }

    #[test]
    fn an_unfinished_frame_is_held_not_returned() {
        let stream = frames_of(&[vec![1; 300]]);
        let mut decoder = FrameDecoder::new();
        decoder.space()[..299].copy_from_slice(&stream[..299]);
        decoder.filled(299);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 299);
        decoder.space()[..3].copy_from_slice(&stream[299..]);
        decoder.filled(3);
        assert_eq!(decoder.next_frame().map(|f| f.map(<[u8]>::len)), Ok(Some(300)));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn random_bytes_never_panic_and_never_yield_an_oversize_frame() {
        let mut x: u32 = 0x9E37_79B9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..300 {
            let len = (next() % 9000) as usize;
            let stream: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let reads = [(next() % 3000) as usize + 1, (next() % 7) as usize + 1];
            let (got, _) = decode_in_reads(&stream, &reads);
            assert!(got.iter().all(|f| !f.is_empty() && f.len() <= MAX_FRAME));
        }
    }

    #[test]
    fn encoding_refuses_what_two_bytes_cannot_say() {
        let mut out = Vec::new();
        assert_eq!(encode_frame(&mut out, &vec![0; 70_000]), Err(FramingError::Oversize(70_000)));
        assert_eq!(encode_frame(&mut out, &[]), Err(FramingError::Empty));
        assert!(out.is_empty());
        encode_frame(&mut out, &[1, 2, 3]).expect("small datagram");
        assert_eq!(out, vec![0, 3, 1, 2, 3]);
    }
}
