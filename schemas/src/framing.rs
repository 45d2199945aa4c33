//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, Avro binary.

/// Why bytes are not a Confluent-framed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Fewer than the 5 header bytes.
    #[error("message of {0} bytes is shorter than the 5-byte Confluent header")]
    TooShort(usize),
    /// The first byte is not 0.
    #[error("magic byte is {0:#04x}, expected 0x00")]
    BadMagic(u8),
}

/// Splits a framed message into its schema id and Avro body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), FramingError> {
    if bytes.len() < 5 {
        return Err(FramingError::TooShort(bytes.len()));
    }
    if bytes[0] != 0 {
        return Err(FramingError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

/// Appends the header for `schema_id` to `out`; the Avro body follows.
pub fn frame_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = Vec::new();
        frame_header(0x0102_0304, &mut buf);
        buf.extend_from_slice(b"body");
        assert_eq!(buf[..5], [0, 1, 2, 3, 4]);
        assert_eq!(unframe(&buf), Ok((0x0102_0304, &b"body"[..])));
    }

    #[test]
    fn rejects_short_and_bad_magic() {
        assert_eq!(unframe(&[0, 0, 0]), Err(FramingError::TooShort(3)));
        assert_eq!(unframe(&[]), Err(FramingError::TooShort(0)));
        assert_eq!(unframe(&[1, 0, 0, 0, 1, 9]), Err(FramingError::BadMagic(1)));
        // An empty body is well framed; the Avro decoder judges it.
        assert_eq!(unframe(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
    }
}
