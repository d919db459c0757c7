//! gRPC calls whose messages carry record bytes, served and made without tonic's copies.
//!
//! tonic encodes each message into one contiguous buffer, so every record batch a fetch returns
//! is copied out of the segment's memory map once before the kernel copies it again into the
//! socket; serving a replay, that copy was about 30% of the broker's CPU, and a partition leader
//! pays it once per follower. Here a message is encoded as a list of chunks instead: the small
//! fields go into a shared buffer, and each large `bytes` field is the caller's `Bytes` itself
//! (for a fetch, the memory-map slice; for a produce, the producer's batch). hyper's HTTP/2
//! layer writes large data chunks with vectored writes, so the records reach the socket without
//! a user-space copy.
//!
//! The receiving side has the mirror-image copy: tonic appends every HTTP/2 data frame into one
//! buffer before decoding a message from it. Here the frames are kept as they arrived and prost
//! decodes across them, so a `bytes` field that lies within one frame (the sender sends each
//! large field as its own chunk) is a slice of the frame hyper read from the socket.
//!
//! Only the framing is done here (the 5-byte gRPC message prefix, the `grpc-status` trailer);
//! messages are still encoded and decoded by prost, and errors still become statuses by tonic's
//! rules, so neither end can tell these calls from tonic's own.

mod client;
mod framing;
mod server;

pub use client::{streaming, unary};
pub use framing::{ChunkedReader, MessageStream, decode_unary_message, encode_message_chunks};
pub use server::{serve_streaming, serve_unary};

/// The calls served and made through this module, as HTTP/2 paths.
pub mod paths {
    /// A producer's ordered stream of produce requests (`strata.v1.Broker/ProduceStream`).
    pub const PRODUCE_STREAM: &str = "/strata.v1.Broker/ProduceStream";
    /// A consumer's fetch (`strata.v1.Broker/Fetch`).
    pub const FETCH: &str = "/strata.v1.Broker/Fetch";
    /// A follower's fetch from its leader (`strata.replication.v1.Replication/ReplicaFetch`).
    pub const REPLICA_FETCH: &str = "/strata.replication.v1.Replication/ReplicaFetch";
    /// A share-group worker's fetch (`strata.v1.GroupCoordinator/ShareFetch`).
    pub const SHARE_FETCH: &str = "/strata.v1.GroupCoordinator/ShareFetch";
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;
    use http::header::CONTENT_TYPE;
    use http_body_util::BodyExt;
    use prost::Message;
    use tonic::body::Body;
    use tonic::{Request, Response, Status};

    use super::framing::MESSAGE_PREFIX_BYTES;
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
            paths::PRODUCE_STREAM,
            format!("/{}/ProduceStream", crate::v1::broker_server::SERVICE_NAME)
        );
        assert_eq!(
            paths::SHARE_FETCH,
            format!(
                "/{}/ShareFetch",
                crate::v1::group_coordinator_server::SERVICE_NAME
            )
        );
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

    fn body_of(frames: Vec<Bytes>) -> Body {
        let frames = frames
            .into_iter()
            .map(|frame| Ok::<_, Status>(http_body::Frame::data(frame)));
        Body::new(http_body_util::StreamBody::new(futures::stream::iter(
            frames,
        )))
    }

    fn encoded(message: &FetchPartitionResponse) -> Vec<u8> {
        concatenated(&encode_message_chunks(message).unwrap())
    }

    #[tokio::test]
    async fn a_request_stream_split_anywhere_decodes_message_by_message() {
        let messages: Vec<_> = (0..3u8)
            .map(|index| partition(Bytes::from(vec![index; 100 * usize::from(index)])))
            .collect();
        let body: Vec<u8> = messages.iter().flat_map(encoded).collect();
        let body = Bytes::from(body);
        for split in 0..=body.len() {
            let frames = vec![body.slice(..split), body.slice(split..)];
            let decoded: Vec<FetchPartitionResponse> = MessageStream::new(body_of(frames), 1 << 20)
                .map(Result::unwrap)
                .collect()
                .await;
            assert_eq!(decoded, messages, "split at {split}");
        }
    }

    #[tokio::test]
    async fn a_request_stream_refuses_an_oversized_message_and_a_truncated_one() {
        let first = encoded(&partition(Bytes::from_static(b"small")));
        let large = encoded(&partition(Bytes::from(vec![1u8; 1000])));

        let mut oversized = MessageStream::<FetchPartitionResponse>::new(
            body_of(vec![first.clone().into(), large.clone().into()]),
            500,
        );
        assert!(oversized.next().await.unwrap().is_ok());
        let refused = oversized.next().await.unwrap().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            oversized.next().await.is_none(),
            "nothing after the refusal"
        );

        let cut = Bytes::from(large).slice(..600);
        let mut truncated =
            MessageStream::<FetchPartitionResponse>::new(body_of(vec![cut]), 1 << 20);
        let refused = truncated.next().await.unwrap().unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Internal);
        assert!(refused.message().contains("ended inside a message"));
    }

    async fn serve_echo(
        frames: Vec<Bytes>,
        fail_after: Option<usize>,
    ) -> (Vec<FetchPartitionResponse>, http::HeaderMap) {
        let request = http::Request::new(body_of(frames));
        let response = serve_streaming(
            request,
            1 << 20,
            |request: Request<MessageStream<FetchPartitionResponse>>| async move {
                let mut echoed = request
                    .into_inner()
                    .enumerate()
                    .map(move |(index, message)| match fail_after {
                        Some(limit) if index >= limit => Err(Status::data_loss("refused")),
                        _ => message,
                    });
                let (sender, receiver) = futures::channel::mpsc::unbounded();
                tokio::spawn(async move {
                    while let Some(message) = echoed.next().await {
                        let failed = message.is_err();
                        let _ = sender.unbounded_send(message);
                        if failed {
                            break;
                        }
                    }
                });
                Ok(Response::new(receiver))
            },
        )
        .await;
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().unwrap().clone();
        let body = collected.to_bytes();
        let decoded = MessageStream::new(body_of(vec![body]), 1 << 20)
            .map(Result::unwrap)
            .collect()
            .await;
        (decoded, trailers)
    }

    #[tokio::test]
    async fn a_streaming_call_answers_each_message_and_ends_with_its_status() {
        let messages: Vec<_> = (0..3u8)
            .map(|index| partition(Bytes::from(vec![index; 5000])))
            .collect();
        let body: Vec<u8> = messages.iter().flat_map(encoded).collect();

        let (echoed, trailers) = serve_echo(vec![body.clone().into()], None).await;
        assert_eq!(echoed, messages);
        assert_eq!(trailers["grpc-status"], "0");

        let (echoed, trailers) = serve_echo(vec![body.into()], Some(2)).await;
        assert_eq!(echoed, messages[..2]);
        assert_eq!(
            trailers["grpc-status"], "15",
            "DATA_LOSS, after what was answered"
        );
    }

    #[tokio::test]
    async fn a_streaming_handler_error_is_a_trailers_only_status() {
        let refused = serve_streaming(
            http::Request::new(body_of(Vec::new())),
            1 << 20,
            |_: Request<MessageStream<FetchPartitionResponse>>| async {
                Err::<
                    Response<
                        futures::channel::mpsc::UnboundedReceiver<
                            Result<FetchPartitionResponse, Status>,
                        >,
                    >,
                    _,
                >(Status::unavailable("not serving yet"))
            },
        )
        .await;
        assert_eq!(refused.headers()["grpc-status"], "14");
    }
}
