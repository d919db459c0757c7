//! A bare Kafka wire client for tests of the Kafka listener: one connection, one request at a
//! time, messages from the `kafka-protocol` crate. Real Kafka clients (kcat, confluent-kafka,
//! kafka-python) are exercised by the tests crate; this one reaches what they never send.

#![allow(dead_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for a loaded two-core machine; a healthy answer takes milliseconds.
pub const ANSWER_WAIT: Duration = Duration::from_secs(30);

pub struct KafkaConnection {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaConnection {
    pub async fn connect(address: SocketAddr) -> KafkaConnection {
        KafkaConnection {
            stream: TcpStream::connect(address)
                .await
                .expect("connects to the Kafka listener"),
            next_correlation_id: 1,
        }
    }

    /// The frame of `request` at `version` (size prefix included) and its correlation id.
    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (Bytes, i32) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strata-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        request.encode(&mut body, version).expect("request encodes");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        (frame.freeze(), correlation_id)
    }

    /// Sends `request` and returns its response.
    pub async fn send<R: Request>(&mut self, request: R, version: i16) -> R::Response {
        let (frame, correlation_id) = self.frame(&request, version);
        self.write_raw(&frame).await;
        let mut response = self
            .read_frame()
            .await
            .expect("the broker answers instead of closing the connection");
        let header = ResponseHeader::decode(
            &mut response,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("response header decodes");
        assert_eq!(header.correlation_id, correlation_id);
        let decoded = R::Response::decode(&mut response, version).expect("response decodes");
        assert!(
            !response.has_remaining(),
            "{} bytes left after the response",
            response.remaining()
        );
        decoded
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    /// Closes the sending side, as a client that stops mid-frame does.
    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.expect("shuts down");
    }

    /// The next response frame without its size prefix; `None` once the broker closed the
    /// connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let mut prefix = [0u8; 4];
            self.stream.read_exact(&mut prefix).await.ok()?;
            let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(ANSWER_WAIT, read)
            .await
            .expect("the broker answers or closes within the wait")
    }

    /// Whether the broker closed the connection (rather than answering or waiting).
    pub async fn is_closed_by_broker(&mut self) -> bool {
        self.read_frame().await.is_none()
    }
}
