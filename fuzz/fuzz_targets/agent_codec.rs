//! The ssh-agent codec (`kmssh_agent::protocol`): a byte stream as a socket delivers it,
//! split into frames; each body decoded as a request and as an answer. Nothing may panic,
//! and whatever decodes must encode back to the bytes it came from.

#![no_main]

use kmssh_agent::protocol::{
    MAX_MESSAGE_LEN, ProtocolError, Request, Response, frame, frame_len, split_frame,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    loop {
        match split_frame(stream) {
            Ok(Some((body, rest))) => {
                let taken = &stream[..stream.len() - rest.len()];
                assert_eq!(frame(body), taken, "a frame re-frames to its bytes");
                check_body(body);
                stream = rest;
            }
            // More bytes needed: what is there is a short prefix, or a prefix and a short body.
            Ok(None) => {
                if let Some(prefix) = stream.first_chunk::<4>() {
                    let len = frame_len(*prefix).expect("split_frame accepted this prefix");
                    assert!(stream.len() - 4 < len, "a whole frame was left unsplit");
                }
                break;
            }
            Err(ProtocolError::TooLong(len)) => {
                assert!(len > MAX_MESSAGE_LEN);
                break;
            }
            Err(ProtocolError::Empty) => break,
            Err(other) => panic!("split_frame returned {other:?}"),
        }
    }
    // The whole input as one body too, so bodies need not be framed to be explored.
    check_body(data);
});

fn check_body(body: &[u8]) {
    if let Ok(request) = Request::decode(body) {
        let encoded = request.encode().expect("a decoded request encodes");
        match &request {
            // Fully decoded: exactly the bytes received.
            Request::RequestIdentities | Request::Sign { .. } => {
                assert_eq!(encoded, body, "{request:?} re-encodes to its bytes");
            }
            // The name is decoded, the contents left to the extension: a prefix.
            Request::Extension(_) => {
                assert!(
                    body.starts_with(&encoded),
                    "{request:?} re-encodes to a prefix"
                );
            }
            // Only the type byte is read.
            Request::Other(kind) => assert_eq!(encoded, [*kind]),
        }
        assert_eq!(
            Request::decode(&encoded).as_ref(),
            Ok(&request),
            "a re-encoded request decodes to itself"
        );
        let _ = format!("{request:?}");
    }
    if let Ok(response) = Response::decode(body) {
        let encoded = response.encode().expect("a decoded answer encodes");
        assert_eq!(encoded, body, "{response:?} re-encodes to its bytes");
    }
}
