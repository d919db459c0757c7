//! The calling side: requests encoded in chunks, responses decoded from their frames.

use futures::{Stream, StreamExt};
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http_body_util::BodyExt;
use prost::Message;
use tonic::body::Body;
use tonic::codec::Streaming;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;
use tower_service::Service;

use super::framing::{
    ChunkedReader, EncodedMessages, Ending, chunks_body, decode_unary_message,
    encode_message_chunks,
};

/// Calls the unary method at `path` (one of `paths`) on `channel`, reading the response's
/// records without tonic's copy. Behaves as the generated client's method does: the request's
/// metadata (its timeout among them) is sent as headers, and a failure is the server's status.
pub async fn unary<Req: Message, Resp: Message + Default>(
    channel: Channel,
    path: &'static str,
    request: Request<Req>,
) -> Result<Response<Resp>, Status> {
    // Extensions stay behind: they are for middleware in this process, which these calls skip.
    let (metadata, _extensions, message) = request.into_parts();
    let body = chunks_body(encode_message_chunks(&message)?, None);
    let (parts, mut body) = call(channel, path, metadata, body).await?.into_parts();
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

/// Opens the bidirectional streaming call at `path` on `channel`, sending each request of the
/// stream with its large `bytes` fields by reference (a producer's batches leave without
/// tonic's copy). The responses are decoded by tonic, as the generated client's would be.
pub async fn streaming<Req, Resp, Requests>(
    channel: Channel,
    path: &'static str,
    requests: Request<Requests>,
) -> Result<Response<Streaming<Resp>>, Status>
where
    Req: Message + 'static,
    Resp: Message + Default + Send + 'static,
    Requests: Stream<Item = Req> + Send + 'static,
{
    let (metadata, _extensions, requests) = requests.into_parts();
    let frames = EncodedMessages::new(requests.map(Ok).boxed(), Ending::Plain);
    let body = Body::new(http_body_util::StreamBody::new(frames));
    let (parts, body) = call(channel, path, metadata, body).await?.into_parts();
    // As from any tonic client: no limit on what the server sends back (it answers what was
    // asked for).
    let responses = Streaming::new_response(
        ProstDecoder::<Resp>::default(),
        body,
        parts.status,
        None,
        Some(usize::MAX),
    );
    Ok(Response::from_parts(
        MetadataMap::from_headers(parts.headers),
        responses,
        tonic::Extensions::new(),
    ))
}

/// Sends a gRPC request and checks the response's head: a trailers-only failure, or an HTTP
/// status no gRPC server sends, is an error here.
async fn call(
    mut channel: Channel,
    path: &'static str,
    metadata: MetadataMap,
    body: Body,
) -> Result<http::Response<Body>, Status> {
    let mut http_request = http::Request::new(body);
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
    if let Some(status) = Status::from_header_map(response.headers()) {
        // Trailers-only: the call failed before any message.
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    if response.status() != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "the server answered HTTP {} to a gRPC call",
            response.status()
        )));
    }
    Ok(response)
}
