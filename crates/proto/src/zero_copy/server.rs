//! The serving side: requests decoded from their frames, responses encoded in chunks.

use std::future::Future;

use futures::Stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body_util::{BodyExt, Limited, StreamBody};
use prost::Message;
use tonic::body::Body;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::framing::{
    EncodedMessages, Ending, MessageStream, chunks_body, decode_unary_message,
    encode_message_chunks, status_trailers,
};

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
        Ok((metadata, chunks)) => {
            let trailers = status_trailers(&Status::ok(""));
            grpc_response(metadata, chunks_body(chunks, Some(trailers)))
        }
        Err(status) => status.into_http(),
    }
}

/// Serves one bidirectional streaming call: `handler` gets the request messages as they are
/// decoded (each refused above `max_message_bytes`) and returns the response stream, whose
/// messages go out in chunks. An error from the handler is a trailers-only status; an error in
/// the response stream ends the call with that status.
pub async fn serve_streaming<Req, Resp, Responses, Handler, Fut>(
    request: http::Request<Body>,
    max_message_bytes: usize,
    handler: Handler,
) -> http::Response<Body>
where
    Req: Message + Default,
    Resp: Message + 'static,
    Responses: Stream<Item = Result<Resp, Status>> + Unpin + Send + 'static,
    Handler: FnOnce(Request<MessageStream<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<Responses>, Status>>,
{
    let (parts, body) = request.into_parts();
    let request = Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        MessageStream::new(body, max_message_bytes),
    );
    match handler(request).await {
        Ok(response) => {
            let (metadata, responses, _) = response.into_parts();
            let frames = EncodedMessages::new(responses, Ending::Trailers);
            grpc_response(metadata, Body::new(StreamBody::new(frames)))
        }
        Err(status) => status.into_http(),
    }
}

fn grpc_response(metadata: MetadataMap, body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    *response.headers_mut() = metadata.into_headers();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}
