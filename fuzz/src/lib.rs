//! What the fuzz targets share: how one input carries several messages, and the clock they run at.
//!
//! Framing: an input is a sequence of frames `[len: u16 little-endian][len bytes]`; a short last frame takes
//! what is left. The seed program writes its seeds with [`frame`], so the fuzzer starts from real messages
//! and mutates their bytes as well as their number and order.

use chrono::{DateTime, TimeZone, Utc};

/// The frames of `data`, at most `max` of them.
pub fn frames(mut data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < max {
        let [lo, hi, rest @ ..] = data else {
            // One byte left: a frame of its own.
            out.push(data);
            break;
        };
        data = rest;
        let len = usize::from(u16::from_le_bytes([*lo, *hi]));
        let len = len.min(data.len());
        out.push(&data[..len]);
        data = &data[len..];
    }
    out
}

/// The input that [`frames`] splits into `parts`.
pub fn frame<B: AsRef<[u8]>>(parts: &[B]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        let part = part.as_ref();
        let len = u16::try_from(part.len()).expect("a seed message under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// "Now" of a run: fixed, so a crash reproduces. A message's own dates vary; this one need not.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap()
}

/// An error the service parks or sends back is cut: it names values shortened (`limits::SHOWN`), so its
/// size does not grow with the input's. Generous, to catch only an error that echoes a value whole.
pub const MAX_REASON_LEN: usize = 4_096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let parts: Vec<Vec<u8>> = vec![b"abc".to_vec(), vec![], vec![7; 300]];
        assert_eq!(frames(&frame(&parts), 10), parts);
        assert_eq!(frames(&[5], 10), vec![&[5u8][..]]);
        assert_eq!(frames(&[3, 0, 1], 10), vec![&[1u8][..]]);
    }
}
