//! The protobuf codec of the generated service and client: prost's, except that a request
//! message that does not parse is the client's error, INVALID_ARGUMENT `invalid_input` (prost's
//! codec answers INTERNAL, which tells a caller the server failed). A response that does not
//! parse (the generated client's side) stays INTERNAL.

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstCodec;

use super::status;
use crate::http::ApiError;

/// prost's codec with request parse errors as INVALID_ARGUMENT (see the module's note).
#[derive(Debug, Clone, Default)]
pub struct KServeCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for KServeCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = RequestDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(self.0.decoder())
    }
}

/// prost's decoder, its parse errors named as the client's when it decodes a request.
#[derive(Debug)]
pub struct RequestDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for RequestDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|err| {
            // Every message the server decodes is one of the protocol's `*Request`s; what the
            // generated client decodes are `*Response`s.
            if std::any::type_name::<D::Item>().ends_with("Request") {
                status(ApiError::BadRequest(format!(
                    "the request message is not valid protobuf: {}",
                    err.message()
                )))
            } else {
                err
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
