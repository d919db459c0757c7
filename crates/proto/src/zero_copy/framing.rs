//! gRPC message framing over chunks: messages encoded with their large `bytes` fields by
//! reference, and decoded from the data frames they arrived in.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::UninitSlice};
use futures::Stream;
use http_body::{Body as _, Frame};
use http_body_util::StreamBody;
use prost::Message;
use tonic::Status;
use tonic::body::Body;

/// `bytes` fields at least this long are passed through as their own chunk; shorter ones are
/// cheaper to copy than to hand to the socket as a separate piece.
const ZERO_COPY_MIN_BYTES: usize = 4096;
/// The gRPC message prefix: a compression flag and a big-endian length.
pub(super) const MESSAGE_PREFIX_BYTES: usize = 5;

/// A `BufMut` that keeps large `Bytes` it is given as separate chunks instead of copying them.
///
/// prost writes a `bytes::Bytes` field with `BufMut::put`, which `Bytes` can satisfy by
/// reference (`Buf::copy_to_bytes` on a `Bytes` is a slice, not a copy).
#[derive(Debug, Default)]
struct ChunkedBuf {
    chunks: Vec<Bytes>,
    current: BytesMut,
}

impl ChunkedBuf {
    /// The chunks written, in order; their concatenation is what was written.
    fn into_chunks(mut self) -> Vec<Bytes> {
        self.flush();
        self.chunks
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.chunks.push(self.current.split().freeze());
        }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, whose own implementation upholds the
// trait's contract; `put` only adds whole chunks in front of what comes next.
unsafe impl BufMut for ChunkedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller initialised `count` bytes of the chunk `chunk_mut` returned, which
        // is the inner buffer's.
        unsafe { self.current.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put<T: Buf>(&mut self, mut source: T)
    where
        Self: Sized,
    {
        if source.remaining() >= ZERO_COPY_MIN_BYTES {
            self.flush();
            self.chunks.push(source.copy_to_bytes(source.remaining()));
        } else {
            self.current.put(source);
        }
    }

    fn put_slice(&mut self, source: &[u8]) {
        self.current.extend_from_slice(source);
    }
}

/// `message` as one gRPC length-prefixed message, in chunks.
pub fn encode_message_chunks<M: Message>(message: &M) -> Result<Vec<Bytes>, Status> {
    let length = message.encoded_len();
    let length = u32::try_from(length).map_err(|_| {
        Status::resource_exhausted(format!(
            "a message of {length} bytes does not fit in one gRPC message"
        ))
    })?;
    let mut buf = ChunkedBuf::default();
    buf.current.reserve(256);
    buf.current.put_u8(0);
    buf.current.put_u32(length);
    message.encode_raw(&mut buf);
    Ok(buf.into_chunks())
}

/// The message length a gRPC message prefix announces, or why the message cannot be read.
fn message_length(prefix: [u8; MESSAGE_PREFIX_BYTES]) -> Result<usize, Status> {
    match prefix[0] {
        0 => Ok(u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize),
        1 => Err(Status::unimplemented(
            "compressed messages are not accepted by this call",
        )),
        flag => Err(Status::internal(format!(
            "protocol error: invalid compression flag {flag} (valid flags are 0 and 1)"
        ))),
    }
}

fn decode_message<M: Message + Default>(message: ChunkedReader) -> Result<M, Status> {
    M::decode(message)
        .map_err(|error| Status::internal(format!("failed to decode message: {error}")))
}

/// The one message of a unary call's body, as tonic would decode it, from the body's data
/// frames in order (one `Bytes` holding the whole body will do).
pub fn decode_unary_message<M: Message + Default>(
    frames: impl Into<ChunkedReader>,
) -> Result<M, Status> {
    let mut body = frames.into();
    let Some(prefix) = body.prefix() else {
        return Err(Status::internal(format!(
            "a unary call needs one gRPC message; got {} bytes",
            body.remaining()
        )));
    };
    let length = message_length(prefix)?;
    body.advance(MESSAGE_PREFIX_BYTES);
    if length != body.remaining() {
        return Err(Status::internal(format!(
            "a unary call needs exactly one gRPC message of {length} bytes; the body holds {}",
            body.remaining()
        )));
    }
    decode_message(body)
}

/// Data frames read as one `Buf`. `copy_to_bytes` slices a frame instead of copying when the
/// bytes asked for lie within it, which is how prost takes a `bytes::Bytes` field.
#[derive(Debug, Default)]
pub struct ChunkedReader {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl From<Bytes> for ChunkedReader {
    fn from(bytes: Bytes) -> ChunkedReader {
        let mut reader = ChunkedReader::default();
        reader.push(bytes);
        reader
    }
}

impl From<Vec<Bytes>> for ChunkedReader {
    fn from(chunks: Vec<Bytes>) -> ChunkedReader {
        let mut reader = ChunkedReader::default();
        chunks.into_iter().for_each(|chunk| reader.push(chunk));
        reader
    }
}

impl Buf for ChunkedReader {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |chunk| chunk.as_ref())
    }

    fn advance(&mut self, mut count: usize) {
        assert!(count <= self.remaining, "advanced past the end of the body");
        self.remaining -= count;
        while count > 0 {
            let front = self
                .chunks
                .front_mut()
                .expect("remaining counts these bytes");
            if count < front.len() {
                front.advance(count);
                return;
            }
            count -= front.len();
            self.chunks.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, length: usize) -> Bytes {
        match self.chunks.front_mut() {
            Some(front) if front.len() >= length => {
                let bytes = front.split_to(length);
                self.remaining -= length;
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                bytes
            }
            _ => {
                assert!(length <= self.remaining, "copied past the end of the body");
                let mut copied = BytesMut::with_capacity(length);
                copied.put((&mut *self).take(length));
                copied.freeze()
            }
        }
    }
}

impl ChunkedReader {
    pub(super) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// The message prefix at the front, without consuming it; `None` until 5 bytes are here.
    fn prefix(&self) -> Option<[u8; MESSAGE_PREFIX_BYTES]> {
        if self.remaining < MESSAGE_PREFIX_BYTES {
            return None;
        }
        let mut prefix = [0u8; MESSAGE_PREFIX_BYTES];
        let mut filled = 0;
        for chunk in &self.chunks {
            let taken = chunk.len().min(MESSAGE_PREFIX_BYTES - filled);
            prefix[filled..filled + taken].copy_from_slice(&chunk[..taken]);
            filled += taken;
            if filled == MESSAGE_PREFIX_BYTES {
                break;
            }
        }
        Some(prefix)
    }

    /// Moves the first `length` bytes into a reader of their own, slicing frames, not copying.
    fn split_to(&mut self, mut length: usize) -> ChunkedReader {
        assert!(length <= self.remaining, "split past the end of the body");
        let mut front = ChunkedReader::default();
        while length > 0 {
            let chunk = self
                .chunks
                .front_mut()
                .expect("remaining counts these bytes");
            let taken = if chunk.len() <= length {
                self.chunks.pop_front().expect("just looked at it")
            } else {
                chunk.split_to(length)
            };
            length -= taken.len();
            self.remaining -= taken.len();
            front.push(taken);
        }
        front
    }
}

/// The messages of a streaming call's request body, decoded as their frames arrive. A `bytes`
/// field that lies within one frame is a slice of it, as in [`decode_unary_message`].
///
/// The body is read only when the caller asks for the next message, so HTTP/2 flow control
/// holds a sender back while the messages already read are being handled.
pub struct MessageStream<M> {
    body: Body,
    buffered: ChunkedReader,
    max_message_bytes: usize,
    ended: bool,
    message: PhantomData<fn() -> M>,
}

impl<M> MessageStream<M> {
    /// Refuses (and ends the stream at) any message longer than `max_message_bytes`.
    pub fn new(body: Body, max_message_bytes: usize) -> MessageStream<M> {
        MessageStream {
            body,
            buffered: ChunkedReader::default(),
            max_message_bytes,
            ended: false,
            message: PhantomData,
        }
    }

    /// The next whole message among the frames read so far.
    fn next_buffered(&mut self) -> Result<Option<ChunkedReader>, Status> {
        let Some(prefix) = self.buffered.prefix() else {
            return Ok(None);
        };
        let length = message_length(prefix)?;
        if length > self.max_message_bytes {
            return Err(Status::resource_exhausted(format!(
                "a message of {length} bytes is above this call's limit of {} bytes",
                self.max_message_bytes
            )));
        }
        if self.buffered.remaining() < MESSAGE_PREFIX_BYTES + length {
            return Ok(None);
        }
        self.buffered.advance(MESSAGE_PREFIX_BYTES);
        Ok(Some(self.buffered.split_to(length)))
    }
}

impl<M: Message + Default> Stream for MessageStream<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.next_buffered() {
                Ok(Some(message)) => return Poll::Ready(Some(decode_message(message))),
                Ok(None) => {}
                Err(status) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
            match ready!(Pin::new(&mut this.body).poll_frame(context)) {
                Some(Ok(frame)) => {
                    // Request trailers carry nothing a call here reads.
                    if let Ok(data) = frame.into_data() {
                        this.buffered.push(data);
                    }
                }
                Some(Err(status)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    this.ended = true;
                    if this.buffered.remaining() > 0 {
                        return Poll::Ready(Some(Err(Status::internal(format!(
                            "the request ended inside a message, {} bytes into it",
                            this.buffered.remaining()
                        )))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// How a body of encoded messages ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// A request: the stream just ends; an error resets it.
    Plain,
    /// A response: trailers with the call's status.
    Trailers,
}

/// The trailers that end a response with `status`.
pub(super) fn status_trailers(status: &Status) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    // Only a status whose message cannot be a header value fails here; its code still goes out.
    if status.add_header(&mut trailers).is_err() {
        trailers.insert(Status::GRPC_STATUS, (status.code() as i32).into());
    }
    trailers
}

/// Data frames of `messages`, each message in its chunks (see [`encode_message_chunks`]).
pub(super) struct EncodedMessages<S> {
    messages: Option<S>,
    chunks: VecDeque<Bytes>,
    ending: Ending,
}

impl<S> EncodedMessages<S> {
    pub(super) fn new(messages: S, ending: Ending) -> EncodedMessages<S> {
        EncodedMessages {
            messages: Some(messages),
            chunks: VecDeque::new(),
            ending,
        }
    }

    fn finish(&mut self, outcome: Result<(), Status>) -> Option<Result<Frame<Bytes>, Status>> {
        self.messages = None;
        match (self.ending, outcome) {
            (Ending::Plain, Ok(())) => None,
            (Ending::Plain, Err(status)) => Some(Err(status)),
            (Ending::Trailers, outcome) => {
                let status = outcome.err().unwrap_or_else(|| Status::ok(""));
                Some(Ok(Frame::trailers(status_trailers(&status))))
            }
        }
    }
}

impl<M, S> Stream for EncodedMessages<S>
where
    M: Message,
    S: Stream<Item = Result<M, Status>> + Unpin,
{
    type Item = Result<Frame<Bytes>, Status>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = this.chunks.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
            let Some(messages) = this.messages.as_mut() else {
                return Poll::Ready(None);
            };
            let outcome = match ready!(Pin::new(messages).poll_next(context)) {
                Some(Ok(message)) => match encode_message_chunks(&message) {
                    Ok(chunks) => {
                        this.chunks.extend(chunks);
                        continue;
                    }
                    Err(status) => Err(status),
                },
                Some(Err(status)) => Err(status),
                None => Ok(()),
            };
            return Poll::Ready(this.finish(outcome));
        }
    }
}

/// A body of `chunks`, one data frame each, then `trailers` if any.
pub(super) fn chunks_body(chunks: Vec<Bytes>, trailers: Option<http::HeaderMap>) -> Body {
    let frames = chunks
        .into_iter()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok::<_, Infallible>);
    Body::new(StreamBody::new(futures::stream::iter(frames)))
}
