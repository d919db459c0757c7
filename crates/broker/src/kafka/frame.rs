//! Kafka's request framing: a 4-byte big-endian size, then a request header and body.
//!
//! Pure functions over bytes, so the parts a hostile client controls are testable and fuzzable
//! without a socket. Everything here refuses rather than trusts: a size prefix is checked before
//! anything is allocated for it, and a body is decoded only for an API and version the
//! listener serves ([`super::versions`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::fmt;

/// Bytes of the size prefix.
pub const SIZE_PREFIX_BYTES: usize = 4;
/// The fixed part of every request header: api key, api version, correlation id.
const FIXED_HEADER_BYTES: usize = 8;

/// Why a frame cannot be served. Each variant is answered by closing the connection, except
/// where [`super::serve_connection`] can still reply (an ApiVersions request in a version this
/// listener does not speak is answered with UNSUPPORTED_VERSION, as Kafka does).
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is negative or larger than the listener accepts.
    BadSize { size: i32, max: usize },
    /// Shorter than the fixed header fields.
    TooShortForHeader { size: usize },
    /// An API key this listener does not serve (or no Kafka API at all).
    UnsupportedApi { api_key: i16, correlation_id: i32 },
    /// A served API in a version outside the served range.
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    /// The header or body does not decode.
    Malformed {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reason: String,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadSize { size, max } => {
                write!(formatter, "frame size {size} is outside 0..={max} bytes")
            }
            FrameError::TooShortForHeader { size } => {
                write!(
                    formatter,
                    "a {size}-byte frame is too short for a request header"
                )
            }
            FrameError::UnsupportedApi { api_key, .. } => {
                write!(formatter, "API key {api_key} is not served here")
            }
            FrameError::UnsupportedVersion {
                api_key, version, ..
            } => write!(
                formatter,
                "{api_key:?} version {version} is not served here"
            ),
            FrameError::Malformed {
                api_key,
                version,
                reason,
                ..
            } => write!(
                formatter,
                "{api_key:?} v{version} request does not decode: {reason}"
            ),
        }
    }
}

/// Reads the size prefix at the front of `prefix` and checks it against `max_bytes` before the
/// caller allocates anything for the frame.
pub fn frame_size(prefix: [u8; SIZE_PREFIX_BYTES], max_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    match usize::try_from(size) {
        Ok(size) if size <= max_bytes => Ok(size),
        _ => Err(FrameError::BadSize {
            size,
            max: max_bytes,
        }),
    }
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
    /// Bytes the frame held after the body, which nothing reads.
    pub trailing_bytes: usize,
}

/// The api key, version and correlation id at the front of a frame, read without decoding the
/// rest; enough to answer or log a request that fails to decode.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), FrameError> {
    if frame.len() < FIXED_HEADER_BYTES {
        return Err(FrameError::TooShortForHeader { size: frame.len() });
    }
    let mut fixed = &frame[..FIXED_HEADER_BYTES];
    Ok((fixed.get_i16(), fixed.get_i16(), fixed.get_i32()))
}

/// Decodes one frame (without its size prefix). `served` gives the versions this listener
/// serves for an API, `None` for one it does not serve.
pub fn decode_request(
    mut frame: Bytes,
    served: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, FrameError> {
    let (raw_key, version, correlation_id) = peek_header(&frame)?;
    let api_key = ApiKey::try_from(raw_key).map_err(|()| FrameError::UnsupportedApi {
        api_key: raw_key,
        correlation_id,
    })?;
    let Some((min, max)) = served(api_key) else {
        return Err(FrameError::UnsupportedApi {
            api_key: raw_key,
            correlation_id,
        });
    };
    if version < min || version > max {
        return Err(FrameError::UnsupportedVersion {
            api_key,
            version,
            correlation_id,
        });
    }
    let malformed = |reason: String| FrameError::Malformed {
        api_key,
        version,
        correlation_id,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|error| malformed(format!("header: {error:#}")))?;
    let body = RequestKind::decode(api_key, &mut frame, version)
        .map_err(|error| malformed(format!("{error:#}")))?;
    // Bytes after a whole body are ignored, as Kafka's broker ignores them: librdkafka 2.16
    // sends its Metadata v12 request with three more bytes than the schema has, and Kafka
    // answers it.
    Ok(Request {
        header,
        api_key,
        body,
        trailing_bytes: frame.remaining(),
    })
}

/// A whole response frame: size prefix, response header, body.
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut frame = BytesMut::with_capacity(256);
    frame.put_i32(0); // the size, written once the body is encoded
    header.encode(&mut frame, body.header_version(version))?;
    body.encode(&mut frame, version)?;
    let size = i32::try_from(frame.len() - SIZE_PREFIX_BYTES)?;
    frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    fn served(api_key: ApiKey) -> Option<(i16, i16)> {
        match api_key {
            ApiKey::ApiVersions => Some((0, 3)),
            ApiKey::Metadata => Some((0, 12)),
            _ => None,
        }
    }

    fn frame(api_key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some("test".into()));
        let mut bytes = BytesMut::new();
        header
            .encode(&mut bytes, api_key.request_header_version(version))
            .expect("header encodes");
        body.encode(&mut bytes, version).expect("body encodes");
        bytes.freeze()
    }

    #[test]
    fn a_size_prefix_is_checked_before_anything_is_allocated() {
        assert_eq!(frame_size(100i32.to_be_bytes(), 1 << 20), Ok(100));
        assert_eq!(
            frame_size((1i32 << 30).to_be_bytes(), 1 << 20),
            Err(FrameError::BadSize {
                size: 1 << 30,
                max: 1 << 20
            })
        );
        assert!(frame_size((-5i32).to_be_bytes(), 1 << 20).is_err());
    }

    #[test]
    fn served_requests_decode_in_every_served_version() {
        for version in 0..=3 {
            let body = RequestKind::ApiVersions(
                ApiVersionsRequest::default()
                    .with_client_software_name("t".into())
                    .with_client_software_version("1".into()),
            );
            let request = decode_request(frame(ApiKey::ApiVersions, version, &body), served)
                .expect("decodes");
            assert_eq!(request.header.correlation_id, 7);
            assert_eq!(request.header.request_api_version, version);
        }
    }

    /// The ACL APIs through the listener's own table: each served version decodes what a client
    /// encodes, fields intact, in the flexible versions (2 and 3) as in version 1.
    #[test]
    fn acl_requests_decode_in_every_version_the_listener_serves() {
        use kafka_protocol::messages::create_acls_request::AclCreation;
        use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
        use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
        let listener = super::super::versions::served;
        let name = || Some(StrBytes::from_static_str("orders"));
        let requests = [
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("orders"))
                    .with_resource_pattern_type(4)
                    .with_principal(StrBytes::from_static_str("User:reader"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])),
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(name())
                    .with_pattern_type_filter(2)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(name())
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ])),
        ];
        let api_keys = [ApiKey::CreateAcls, ApiKey::DescribeAcls, ApiKey::DeleteAcls];
        for (api_key, body) in api_keys.into_iter().zip(requests) {
            let (min, max) = listener(api_key).expect("served");
            assert_eq!((min, max), (1, 3), "{api_key:?}");
            for version in min..=max {
                let request = decode_request(frame(api_key, version, &body), listener)
                    .unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error}"));
                assert_eq!(request.body, body, "{api_key:?} v{version}");
                assert_eq!(request.trailing_bytes, 0);
            }
        }
    }

    #[test]
    fn unserved_apis_versions_and_bodies_that_do_not_decode_are_refused() {
        let metadata = RequestKind::Metadata(MetadataRequest::default());
        assert_eq!(
            decode_request(frame(ApiKey::Metadata, 13, &metadata), served).unwrap_err(),
            FrameError::UnsupportedVersion {
                api_key: ApiKey::Metadata,
                version: 13,
                correlation_id: 7
            }
        );
        let produce = frame(
            ApiKey::Produce,
            9,
            &RequestKind::Produce(Default::default()),
        );
        assert!(matches!(
            decode_request(produce, served),
            Err(FrameError::UnsupportedApi {
                api_key: 0,
                correlation_id: 7
            })
        ));
        let mut trailing = BytesMut::from(&frame(ApiKey::Metadata, 4, &metadata)[..]);
        trailing.put_slice(b"garbage");
        let request = decode_request(trailing.freeze(), served).expect("a whole body decodes");
        assert_eq!(
            request.trailing_bytes, 7,
            "what follows the body is counted, not read"
        );
        let whole = frame(ApiKey::Metadata, 9, &metadata);
        let truncated = whole.slice(..whole.len() - 1);
        assert!(matches!(
            decode_request(truncated, served),
            Err(FrameError::Malformed { .. })
        ));
        assert_eq!(
            decode_request(Bytes::from_static(b"\x00\x03"), served).unwrap_err(),
            FrameError::TooShortForHeader { size: 2 }
        );
    }

    proptest! {
        /// Whatever a client sends after a served header, decoding answers and never panics.
        #[test]
        fn arbitrary_frames_never_panic(
            api_key in prop_oneof![Just(18i16), Just(3i16), any::<i16>()],
            version in -2i16..16,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = BytesMut::new();
            bytes.put_i16(api_key);
            bytes.put_i16(version);
            bytes.put_i32(1);
            bytes.put_slice(&body);
            let _ = decode_request(bytes.freeze(), served);
        }
    }
}
