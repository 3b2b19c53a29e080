//! The Jupyter wire format over ZeroMQ multipart messages:
//!
//! ```text
//! [routing identities...] "<IDS|MSG>" signature header parent_header metadata content [buffers...]
//! ```
//!
//! The signature is the hex HMAC-SHA256 of the four JSON frames under the
//! connection file's key (empty when the key is empty). [`decode`] checks
//! the framing and the signature in constant time before it parses any
//! JSON, and never panics: a malformed frame, a bad signature or unparsable
//! JSON is a [`WireError`] the caller logs and drops. Content that does not
//! fit its message type still yields the header ([`WireError::Content`]),
//! so the kernel can answer the request with an error instead of leaving
//! the client waiting.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use jupyter_protocol::{Header, JupyterMessage, JupyterMessageContent};
use serde_json::Value;
use sha2::Sha256;

/// The frame between routing identities and the signature.
pub const DELIMITER: &[u8] = b"<IDS|MSG>";

/// Why an incoming message was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("no <IDS|MSG> delimiter among {0} frames")]
    NoDelimiter(usize),
    #[error("{0} frames after the delimiter; a message needs a signature and four JSON frames")]
    TooFewFrames(usize),
    #[error("the signature does not match (wrong key, or the message was altered)")]
    BadSignature,
    #[error("frame '{frame}' is not valid JSON: {error}")]
    Json { frame: &'static str, error: String },
    /// The header parsed but the content does not fit `msg_type`.
    #[error("{}: the content does not fit the message type: {error}", header.msg_type)]
    Content {
        identities: Vec<Bytes>,
        header: Box<Header>,
        error: String,
    },
}

/// Signs and verifies messages with the connection file's key.
#[derive(Clone)]
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(signing: {})", self.mac.is_some())
    }
}

impl Signer {
    /// A signer for `key` (an empty key: no signatures, as Jupyter allows).
    pub fn new(key: &str) -> Signer {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length.
            Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()
        };
        Signer { mac }
    }

    /// The hex signature of the four JSON frames.
    pub fn sign(&self, parts: &[&[u8]; 4]) -> String {
        match &self.mac {
            None => String::new(),
            Some(m) => {
                let mut m = m.clone();
                for p in parts {
                    m.update(p);
                }
                hex(&m.finalize().into_bytes())
            }
        }
    }

    /// Checks `signature` (hex) in constant time.
    pub fn verify(&self, parts: &[&[u8]; 4], signature: &[u8]) -> Result<(), WireError> {
        let Some(m) = &self.mac else {
            return Ok(());
        };
        let Some(sig) = unhex(signature) else {
            return Err(WireError::BadSignature);
        };
        let mut m = m.clone();
        for p in parts {
            m.update(p);
        }
        m.verify_slice(&sig).map_err(|_| WireError::BadSignature)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

fn json(frame: &'static str, bytes: &[u8]) -> Result<Value, WireError> {
    serde_json::from_slice(bytes).map_err(|e| WireError::Json {
        frame,
        error: e.to_string(),
    })
}

/// Parses a multipart message received on a ROUTER socket (the first
/// frames are the routing identities).
pub fn decode(frames: Vec<Bytes>, signer: &Signer) -> Result<JupyterMessage, WireError> {
    let n = frames.len();
    let Some(d) = frames.iter().position(|f| f.as_ref() == DELIMITER) else {
        return Err(WireError::NoDelimiter(n));
    };
    let rest = &frames[d + 1..];
    if rest.len() < 5 {
        return Err(WireError::TooFewFrames(rest.len()));
    }
    let parts: [&[u8]; 4] = [&rest[1], &rest[2], &rest[3], &rest[4]];
    signer.verify(&parts, &rest[0])?;
    let header: Header =
        serde_json::from_value(json("header", &rest[1])?).map_err(|e| WireError::Json {
            frame: "header",
            error: e.to_string(),
        })?;
    // `{}` (no parent) or a header; anything else counts as no parent.
    let parent_header = serde_json::from_value::<Header>(json("parent_header", &rest[2])?).ok();
    let metadata = json("metadata", &rest[3])?;
    let content = json("content", &rest[4])?;
    let identities = frames[..d].to_vec();
    let content = match JupyterMessageContent::from_type_and_content(&header.msg_type, content) {
        Ok(c) => c,
        Err(e) => {
            return Err(WireError::Content {
                identities,
                header: Box::new(header),
                error: e.to_string(),
            })
        }
    };
    Ok(JupyterMessage {
        zmq_identities: identities,
        header,
        parent_header,
        metadata,
        content,
        buffers: rest[5..].to_vec(),
        channel: None,
    })
}

/// The frames of `msg`: its routing identities (or, on IOPub, `topic`),
/// the delimiter, the signature, the four JSON frames and the buffers.
pub fn encode(msg: &JupyterMessage, signer: &Signer, topic: Option<&str>) -> Vec<Bytes> {
    let to_vec = |v: Result<Vec<u8>, serde_json::Error>| v.unwrap_or_else(|_| b"{}".to_vec());
    let header = to_vec(serde_json::to_vec(&msg.header));
    let parent = match &msg.parent_header {
        Some(p) => to_vec(serde_json::to_vec(p)),
        None => b"{}".to_vec(),
    };
    let metadata = to_vec(serde_json::to_vec(&msg.metadata));
    let content = to_vec(serde_json::to_vec(&msg.content));
    let signature = signer.sign(&[&header, &parent, &metadata, &content]);
    let mut frames: Vec<Bytes> = match topic {
        Some(t) => vec![Bytes::from(t.to_string())],
        None => msg.zmq_identities.clone(),
    };
    frames.push(Bytes::from_static(DELIMITER));
    frames.push(Bytes::from(signature));
    frames.extend([header, parent, metadata, content].map(Bytes::from));
    frames.extend(msg.buffers.iter().cloned());
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::ExecuteRequest;

    fn request(signer: &Signer) -> Vec<Bytes> {
        let msg = JupyterMessage::new(ExecuteRequest::new("1 + 1".into()), None)
            .with_zmq_identities(vec![Bytes::from_static(b"peer")]);
        encode(&msg, signer, None)
    }

    #[test]
    fn round_trip_with_signature() {
        let s = Signer::new("secret");
        let frames = request(&s);
        assert_eq!(frames[0].as_ref(), b"peer");
        assert_eq!(frames[2].len(), 64, "hex SHA-256");
        let m = decode(frames, &s).unwrap();
        assert_eq!(m.header.msg_type, "execute_request");
        assert_eq!(m.zmq_identities, vec![Bytes::from_static(b"peer")]);
        match m.content {
            JupyterMessageContent::ExecuteRequest(r) => assert_eq!(r.code, "1 + 1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_bad_signatures_and_frames() {
        let frames = request(&Signer::new("secret"));
        assert!(matches!(
            decode(frames.clone(), &Signer::new("other")),
            Err(WireError::BadSignature)
        ));
        let mut odd = frames.clone();
        odd[2] = Bytes::from_static(b"zz");
        assert!(matches!(
            decode(odd, &Signer::new("secret")),
            Err(WireError::BadSignature)
        ));
        assert!(matches!(
            decode(vec![Bytes::from_static(b"x")], &Signer::new("")),
            Err(WireError::NoDelimiter(1))
        ));
        assert!(matches!(
            decode(frames[..4].to_vec(), &Signer::new("secret")),
            Err(WireError::TooFewFrames(2))
        ));
    }

    #[test]
    fn content_that_does_not_fit_keeps_the_header() {
        let s = Signer::new("");
        let mut frames = request(&s);
        let n = frames.len();
        frames[n - 1] = Bytes::from_static(br#"{"code": 5}"#);
        match decode(frames, &s) {
            Err(WireError::Content { header, .. }) => {
                assert_eq!(header.msg_type, "execute_request")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
        assert_eq!(unhex(b"00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex(b"0g"), None);
    }
}
