//! Unary gRPC calls answered without tonic's encode copy, for responses that carry record bytes.
//!
//! tonic encodes each response into one contiguous buffer, so every record batch a fetch returns
//! is copied out of the segment's memory map once before the kernel copies it again into the
//! socket; serving a replay, that copy was about 30% of the broker's CPU, and a partition leader
//! pays it once per follower. Here the response message is encoded as a list of chunks instead:
//! the small fields go into a shared buffer, and each large `bytes` field is the caller's `Bytes`
//! itself (for a fetch, the memory-map slice). hyper's HTTP/2 layer writes large data chunks with
//! vectored writes, so the records reach the socket without a user-space copy.
//!
//! Only the framing is done here (the 5-byte gRPC message prefix, the `grpc-status` trailer);
//! messages are still encoded and decoded by prost, and errors still become statuses by tonic's
//! rules, so a tonic client cannot tell these calls from tonic-served ones.

use std::convert::Infallible;
use std::future::Future;

use bytes::{Buf, BufMut, Bytes, BytesMut, buf::UninitSlice};
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, Limited, StreamBody};
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

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
pub struct ChunkedBuf {
    chunks: Vec<Bytes>,
    current: BytesMut,
}

impl ChunkedBuf {
    /// The chunks written, in order; their concatenation is what was written.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
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
            "a response of {length} bytes does not fit in one gRPC message"
        ))
    })?;
    let mut buf = ChunkedBuf::default();
    buf.current.reserve(256);
    buf.current.put_u8(0);
    buf.current.put_u32(length);
    message.encode_raw(&mut buf);
    Ok(buf.into_chunks())
}

/// The one message of a unary request body, as tonic's server would decode it.
pub fn decode_request_message<M: Message + Default>(mut body: Bytes) -> Result<M, Status> {
    if body.len() < MESSAGE_PREFIX_BYTES {
        return Err(Status::internal(format!(
            "a unary request needs one gRPC message; got {} bytes",
            body.len()
        )));
    }
    match body.get_u8() {
        0 => {}
        1 => {
            return Err(Status::unimplemented(
                "compressed requests are not accepted by this call",
            ));
        }
        flag => {
            return Err(Status::internal(format!(
                "protocol error: invalid compression flag {flag} (valid flags are 0 and 1)"
            )));
        }
    }
    let length = body.get_u32() as usize;
    if length != body.len() {
        return Err(Status::internal(format!(
            "a unary request needs exactly one gRPC message of {length} bytes; the body holds {}",
            body.len()
        )));
    }
    M::decode(body).map_err(|error| Status::internal(format!("failed to decode request: {error}")))
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
        let message = decode_request_message::<Req>(body)?;
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

fn response_with(metadata: MetadataMap, chunks: Vec<Bytes>) -> http::Response<Body> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
    let frames = chunks
        .into_iter()
        .map(Frame::data)
        .chain(std::iter::once(Frame::trailers(trailers)))
        .map(Ok::<_, Infallible>);
    let mut response =
        http::Response::new(Body::new(StreamBody::new(futures::stream::iter(frames))));
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
        let decoded: FetchPartitionResponse = decode_request_message(body.clone()).unwrap();
        assert_eq!(decoded, message);

        let refused = |body: Bytes| {
            decode_request_message::<FetchPartitionResponse>(body)
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
        let echoed: FetchPartitionResponse = decode_request_message(collected.to_bytes()).unwrap();
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
