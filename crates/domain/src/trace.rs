//! W3C Trace Context: the `traceparent` a delivery's trace travels under, from the webhook request
//! through its job to every provider call (`00-<trace id>-<parent span id>-<flags>`).
//!
//! Only the id layout lives here; randomness comes from the caller (the domain does no I/O).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DomainError;

/// A parsed `traceparent`: the trace, the span that made the call, and whether it is sampled.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

fn hex_into(s: &str, out: &mut [u8]) -> bool {
    s.len() == out.len() * 2
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && out.iter_mut().enumerate().all(|(i, o)| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map(|v| *o = v)
                .is_ok()
        })
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes` into `out` (twice as long). Every delivery formats a trace, so this
/// avoids a string per byte.
fn hex_to(bytes: &[u8], out: &mut [u8]) {
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_to(bytes, &mut out);
    // Only ASCII hex digits were written.
    out.into_iter().map(char::from).collect()
}

impl TraceParent {
    /// Parses a `traceparent` header value. Version `00` must have exactly four fields; a later
    /// version is read by its first four (as the specification asks); `ff` is invalid. All-zero
    /// trace or span ids are invalid.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = |reason: &'static str| DomainError::InvalidId {
            kind: "traceparent",
            input: s.chars().take(80).collect(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, span, flags, rest @ ..] = parts.as_slice() else {
            return Err(bad("not version-traceid-spanid-flags"));
        };
        let mut v = [0u8; 1];
        if !hex_into(version, &mut v) || v[0] == 0xff {
            return Err(bad("invalid version"));
        }
        if v[0] == 0 && !rest.is_empty() {
            return Err(bad("version 00 has exactly four fields"));
        }
        let mut tp = TraceParent {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        if !hex_into(trace, &mut tp.trace_id) || tp.trace_id == [0; 16] {
            return Err(bad("invalid trace id"));
        }
        if !hex_into(span, &mut tp.span_id) || tp.span_id == [0; 8] {
            return Err(bad("invalid parent id"));
        }
        let mut f = [0u8; 1];
        if !hex_into(flags, &mut f) {
            return Err(bad("invalid flags"));
        }
        tp.flags = f[0];
        Ok(tp)
    }

    /// A new sampled trace from 24 random bytes (16 for the trace, 8 for the span). Zero ids are
    /// replaced by one, so the result is always valid.
    pub fn root(random: [u8; 24]) -> Self {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        trace_id.copy_from_slice(&random[..16]);
        span_id.copy_from_slice(&random[16..]);
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if span_id == [0; 8] {
            span_id[7] = 1;
        }
        Self {
            trace_id,
            span_id,
            flags: 1,
        }
    }

    /// The same trace, called from a new span (`span_id`; zero is replaced by one).
    pub fn child(&self, span_id: [u8; 8]) -> Self {
        let mut next = *self;
        next.span_id = if span_id == [0; 8] {
            [0, 0, 0, 0, 0, 0, 0, 1]
        } else {
            span_id
        };
        next
    }

    /// The trace id as 32 lower-case hex digits (what logs and tracing back ends show).
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The calling span's id as 16 hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The trace id's 16 bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The calling span's 8 bytes.
    pub fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    /// Whether the caller records this trace (the `sampled` flag, bit 0 of the flags).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // "00-" trace "-" span "-" flags: 55 ASCII bytes.
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_to(&self.trace_id, &mut out[3..35]);
        hex_to(&self.span_id, &mut out[36..52]);
        hex_to(&[self.flags], &mut out[53..55]);
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let tp = TraceParent::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tp.to_string(), EXAMPLE);
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id(), "00f067aa0ba902b7");
        assert_eq!(hex(&tp.trace_id_bytes()), tp.trace_id());
        assert_eq!(hex(&tp.span_id_bytes()), tp.span_id());
    }

    #[test]
    fn the_sampled_flag_is_bit_zero_of_the_flags() {
        for (flags, sampled) in [("01", true), ("00", false), ("03", true), ("02", false)] {
            let tp = TraceParent::parse(&format!("{}-{flags}", &EXAMPLE[..52]))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(tp.sampled(), sampled, "flags {flags}");
        }
        assert!(
            TraceParent::root([7; 24]).sampled(),
            "a trace we start is recorded"
        );
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert!(TraceParent::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let tp =
            TraceParent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tp.to_string(), EXAMPLE, "we answer in version 00");
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let tp = TraceParent::parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        let c = tp.child([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(c.trace_id(), tp.trace_id());
        assert_eq!(c.span_id(), "0102030405060708");
        assert_eq!(
            TraceParent::root([0; 24]).to_string(),
            "00-00000000000000000000000000000001-0000000000000001-01",
            "zero ids are never produced"
        );
    }
}
