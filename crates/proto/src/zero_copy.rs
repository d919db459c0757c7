//! Unary gRPC calls whose responses carry record bytes, served and made without tonic's copies.
//!
//! tonic encodes each response into one contiguous buffer, so every record batch a fetch returns
//! is copied out of the segment's memory map once before the kernel copies it again into the
//! socket; serving a replay, that copy was about 30% of the broker's CPU, and a partition leader
//! pays it once per follower. Here the response message is encoded as a list of chunks instead:
//! the small fields go into a shared buffer, and each large `bytes` field is the caller's `Bytes`
//! itself (for a fetch, the memory-map slice). hyper's HTTP/2 layer writes large data chunks with
//! vectored writes, so the records reach the socket without a user-space copy.
//!
//! The receiving side has the mirror-image copy: tonic appends every HTTP/2 data frame of a
//! response into one buffer before decoding it. `unary` keeps the frames as they arrived and lets
//! prost decode across them, so a `bytes` field that lies within one frame (the broker sends
//! each `records` field as its own chunk) is a slice of the frame hyper read from the socket.
//!
//! Only the framing is done here (the 5-byte gRPC message prefix, the `grpc-status` trailer);
//! messages are still encoded and decoded by prost, and errors still become statuses by tonic's
//! rules, so neither end can tell these calls from tonic's own.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::UninitSlice};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tower_service::Service;

/// The calls served and made through this module, as HTTP/2 paths.
pub mod paths {
    /// A consumer's fetch (`strata.v1.Broker/Fetch`).
    pub const FETCH: &str = "/strata.v1.Broker/Fetch";
    /// A follower's fetch from its leader (`strata.replication.v1.Replication/ReplicaFetch`).
    pub const REPLICA_FETCH: &str = "/strata.replication.v1.Replication/ReplicaFetch";
}

/// `bytes` fields at least this long are passed through as their own chunk; shorter ones are
/// cheaper to copy than to hand to the socket as a separate piece.
const ZERO_COPY_MIN_BYTES: usize = 4096;
/// The gRPC message prefix: a compression flag and a big-endian length.
const MESSAGE_PREFIX_BYTES: usize = 5;

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

/// The one message of a unary call's body, as tonic would decode it, from the body's data
/// frames in order (one `Bytes` holding the whole body will do).
pub fn decode_unary_message<M: Message + Default>(
    frames: impl Into<ChunkedReader>,
) -> Result<M, Status> {
    let mut body = frames.into();
    if body.remaining() < MESSAGE_PREFIX_BYTES {
        return Err(Status::internal(format!(
            "a unary call needs one gRPC message; got {} bytes",
            body.remaining()
        )));
    }
    match body.get_u8() {
        0 => {}
        1 => {
            return Err(Status::unimplemented(
                "compressed messages are not accepted by this call",
            ));
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: invalid compression flag {flag} (valid flags are 0 and 1)"
            )));
        }
    }
    let length = body.get_u32() as usize;
    if length != body.remaining() {
        return Err(Status::internal(format!(
            "a unary call needs exactly one gRPC message of {length} bytes; the body holds {}",
            body.remaining()
        )));
    }
    M::decode(body).map_err(|error| Status::internal(format!("failed to decode message: {error}")))
}

/// Data frames read as one `Buf`. `copy_to_bytes` slices a frame instead of copying when the
/// bytes asked for lie within it, which is how prost takes a `bytes::Bytes` field.
#[derive(Debug, Default)]
pub struct ChunkedReader {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl ChunkedReader {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }
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

/// Calls the unary method at `path` (one of `paths`) on `channel`, reading the response's
/// records without tonic's copy. Behaves as the generated client's method does: the request's
/// metadata (its timeout among them) is sent as headers, and a failure is the server's status.
pub async fn unary<Req: Message, Resp: Message + Default>(
    mut channel: Channel,
    path: &'static str,
    request: Request<Req>,
) -> Result<Response<Resp>, Status> {
    // Extensions stay behind: they are for middleware in this process, which these calls skip.
    let (metadata, _extensions, message) = request.into_parts();
    let mut http_request = http::Request::new(chunks_body(encode_message_chunks(&message)?, None));
    *http_request.uri_mut() = http::Uri::from_static(path);
    *http_request.method_mut() = http::Method::POST;
    let headers = http_request.headers_mut();
    *headers = metadata.into_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));

    std::future::poll_fn(|context| channel.poll_ready(context))
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    let response = channel
        .call(http_request)
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    let (parts, mut body) = response.into_parts();
    if let Some(status) = Status::from_header_map(&parts.headers) {
        // Trailers-only: the call failed before any message.
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    if parts.status != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "the server answered HTTP {} to a gRPC call",
            parts.status
        )));
    }
    let mut frames = ChunkedReader::default();
    let mut status = None;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => frames.push(data),
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    status = Status::from_header_map(&trailers);
                }
            }
        }
    }
    match status {
        Some(status) if status.code() == tonic::Code::Ok => {}
        Some(status) => return Err(status),
        None => {
            return Err(Status::internal(
                "the response ended without a grpc-status trailer",
            ));
        }
    }
    let message = decode_unary_message(frames)?;
    Ok(Response::from_parts(
        MetadataMap::from_headers(parts.headers),
        message,
        tonic::Extensions::new(),
    ))
}

/// Serves one unary call: decodes the request (refusing bodies above `max_request_bytes`), runs
/// `handler`, and answers with its message in chunks, or with its status.
pub async fn serve_unary<Req, Resp, Handler, Fut>(
    request: http::Request<Body>,
    max_request_bytes: usize,
    handler: Handler,
) -> http::Response<Body>
where
    Req: Message + Default,
    Resp: Message,
    Handler: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let answer = async {
        let (parts, body) = request.into_parts();
        let body = Limited::new(body, max_request_bytes)
            .collect()
            .await
            .map_err(|error| match error.downcast::<Status>() {
                Ok(status) => *status,
                Err(error) => Status::resource_exhausted(format!(
                    "request body refused (the limit is {max_request_bytes} bytes): {error}"
                )),
            })?
            .to_bytes();
        let message = decode_unary_message::<Req>(body)?;
        let request = Request::from_parts(
            MetadataMap::from_headers(parts.headers),
            parts.extensions,
            message,
        );
        let (metadata, message, _) = handler(request).await?.into_parts();
        Ok::<_, Status>((metadata, encode_message_chunks(&message)?))
    };
    match answer.await {
        Ok((metadata, chunks)) => response_with(metadata, chunks),
        Err(status) => status.into_http(),
    }
}

/// A body of `chunks`, one data frame each, then `trailers` if any.
fn chunks_body(chunks: Vec<Bytes>, trailers: Option<http::HeaderMap>) -> Body {
    let frames = chunks
        .into_iter()
        .map(Frame::data)
        .chain(trailers.map(Frame::trailers))
        .map(Ok::<_, Infallible>);
    Body::new(StreamBody::new(futures::stream::iter(frames)))
}

fn response_with(metadata: MetadataMap, chunks: Vec<Bytes>) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
    let mut response = http::Response::new(chunks_body(chunks, Some(trailers)));
    *response.headers_mut() = metadata.into_headers();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{FetchPartitionResponse, FetchResponse};

    fn partition(records: Bytes) -> FetchPartitionResponse {
        FetchPartitionResponse {
            topic: "orders".to_string(),
            partition: 3,
            error_code: 0,
            error_message: String::new(),
            high_watermark: 1_000,
            log_start_offset: 0,
            last_stable_offset: 1_000,
            records,
        }
    }

    fn concatenated(chunks: &[Bytes]) -> Vec<u8> {
        chunks
            .iter()
            .flat_map(|chunk| chunk.iter().copied())
            .collect()
    }

    #[test]
    fn the_paths_are_the_generated_services_methods() {
        assert_eq!(
            paths::FETCH,
            format!("/{}/Fetch", crate::v1::broker_server::SERVICE_NAME)
        );
        assert_eq!(
            paths::REPLICA_FETCH,
            format!(
                "/{}/ReplicaFetch",
                crate::replication_v1::replication_server::SERVICE_NAME
            )
        );
    }

    #[test]
    fn chunks_are_the_message_as_prost_encodes_it_with_large_records_passed_by_reference() {
        let large = Bytes::from(vec![7u8; 64 << 10]);
        let small = Bytes::from_static(b"a short batch");
        let message = FetchResponse {
            partitions: vec![
                partition(large.clone()),
                partition(small),
                partition(Bytes::new()),
            ],
        };
        let chunks = encode_message_chunks(&message).unwrap();

        let mut expected = vec![0u8];
        expected.extend_from_slice(&(message.encoded_len() as u32).to_be_bytes());
        expected.extend_from_slice(&message.encode_to_vec());
        assert_eq!(concatenated(&chunks), expected);
        assert!(
            chunks
                .iter()
                .any(|chunk| chunk.as_ptr() == large.as_ptr() && chunk.len() == large.len()),
            "the large records are sent from their own memory, not a copy"
        );
        assert_eq!(
            chunks.len(),
            3,
            "prefix and fields, the large records, the rest"
        );
    }

    #[test]
    fn a_request_message_round_trips_and_malformed_bodies_are_refused() {
        let message = partition(Bytes::from_static(b"records"));
        let body = Bytes::from(concatenated(&encode_message_chunks(&message).unwrap()));
        let decoded: FetchPartitionResponse = decode_unary_message(body.clone()).unwrap();
        assert_eq!(decoded, message);

        let refused = |body: Bytes| {
            decode_unary_message::<FetchPartitionResponse>(body)
                .unwrap_err()
                .code()
        };
        assert_eq!(refused(Bytes::from_static(b"\0\0")), tonic::Code::Internal);
        assert_eq!(refused(body.slice(..body.len() - 1)), tonic::Code::Internal);
        let mut compressed = body.to_vec();
        compressed[0] = 1;
        assert_eq!(refused(compressed.into()), tonic::Code::Unimplemented);
        let mut garbage = body.to_vec();
        garbage[MESSAGE_PREFIX_BYTES] = 0xff;
        assert_eq!(refused(garbage.into()), tonic::Code::Internal);
    }

    #[test]
    fn a_message_split_anywhere_across_frames_decodes_and_whole_fields_in_one_frame_are_not_copied()
    {
        let records = Bytes::from(vec![9u8; 300]);
        let message = FetchResponse {
            partitions: vec![partition(records.clone()), partition(Bytes::new())],
        };
        let body = Bytes::from(concatenated(&encode_message_chunks(&message).unwrap()));
        for split in 0..=body.len() {
            let frames = vec![body.slice(..split), body.slice(split..)];
            let decoded: FetchResponse = decode_unary_message(frames).unwrap();
            assert_eq!(decoded, message, "split at {split}");
        }

        let start = body
            .windows(records.len())
            .position(|window| window == records.as_ref())
            .unwrap();
        let frames = vec![
            body.slice(..start),
            body.slice(start..start + records.len()),
            body.slice(start + records.len()..),
        ];
        let in_frame = frames[1].as_ptr();
        let decoded: FetchResponse = decode_unary_message(frames).unwrap();
        assert_eq!(
            decoded.partitions[0].records.as_ptr(),
            in_frame,
            "the records are the frame's bytes, not a copy"
        );
    }

    #[tokio::test]
    async fn a_handler_error_is_a_trailers_only_status_and_success_ends_with_status_zero() {
        let request = |message: &FetchPartitionResponse| {
            let body = concatenated(&encode_message_chunks(message).unwrap());
            http::Request::new(Body::new(http_body_util::Full::new(Bytes::from(body))))
        };
        let message = partition(Bytes::from_static(b"records"));

        let failed = serve_unary(
            request(&message),
            1 << 20,
            |_: Request<FetchPartitionResponse>| async {
                Err::<Response<FetchPartitionResponse>, _>(Status::not_found("no such partition"))
            },
        )
        .await;
        assert_eq!(failed.headers()["grpc-status"], "5");

        let answered = serve_unary(
            request(&message),
            1 << 20,
            |request: Request<FetchPartitionResponse>| async {
                Ok(Response::new(request.into_inner()))
            },
        )
        .await;
        assert_eq!(answered.headers()[CONTENT_TYPE], "application/grpc");
        let collected = answered.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        let echoed: FetchPartitionResponse = decode_unary_message(collected.to_bytes()).unwrap();
        assert_eq!(echoed, message);

        let too_large = serve_unary(
            request(&message),
            8,
            |_: Request<FetchPartitionResponse>| async {
                Err::<Response<FetchPartitionResponse>, _>(Status::internal("reached the handler"))
            },
        )
        .await;
        assert_eq!(
            too_large.headers()["grpc-status"],
            "8",
            "RESOURCE_EXHAUSTED, before the handler"
        );
    }
}
