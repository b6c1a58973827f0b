//! MessagePack in msgpackr's "records" form, the serialization of Effect RPC's
//! `RpcSerialization.msgPack` (`new Packr({ useRecords: true })`), which the DO RPC transport of
//! `@livestore/sync-cf` uses.
//!
//! Records replace maps: the first object with a given key list is written as a record
//! definition — `fixext1` of type `0x72` ("r") whose data byte is the record id (`0x40`–`0x7f`),
//! then the keys as an array of strings, then the values — and every later object with the same
//! keys in the same order as the id byte alone followed by the values. Those id bytes are the
//! positive fixints `0x40`–`0x7f` of plain msgpack, so in this form integers from 64 up take the
//! `uint8` marker. Each top-level value starts with no records (msgpackr resets them between
//! `pack` calls unless shared structures are configured, which Effect RPC does not do); with more
//! than 64 distinct key lists in one value the ids wrap around and the oldest is redefined.
//!
//! [`Value`] follows the JavaScript data model, because that is what msgpackr encodes: every
//! number is an `f64` (integers are written as integers when they fit 32 bits, anything else as
//! `float64`), objects keep JavaScript's key order, and `undefined` exists (`fixext1` of type 0).
//! The byte-level reading and writing of markers is the `rmp` crate's; this module adds the
//! records and msgpackr's choices among equivalent encodings, so that what it writes is byte for
//! byte what msgpackr writes (checked against bytes msgpackr produced, in `tests/rpc_codec.rs`).

use std::collections::HashMap;
use std::fmt;

use rmp::Marker;

/// msgpackr's extension type of a record definition.
const RECORD_EXT: i8 = 0x72;
/// The first record id; ids run up to `0x7f`.
const FIRST_RECORD_ID: u8 = 0x40;
/// How many record ids one value can hold at once (msgpackr's `maxOwnStructures` default).
const RECORD_IDS: usize = 64;
/// Nesting deeper than this is refused, so malformed input cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// A value in the JavaScript data model, as msgpackr encodes and decodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `undefined`: `fixext1` of type 0. Dropped from objects when converted to JSON.
    Undefined,
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A JavaScript number.
    Number(f64),
    /// A 64-bit integer as msgpackr writes a `BigInt` (`int64`, or `uint64` when it only fits
    /// unsigned); the clients never send one, but decoding keeps it exact.
    BigInt(i128),
    /// A string.
    Str(String),
    /// Raw bytes (`bin`), which msgpackr decodes to a `Uint8Array`.
    Bin(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// An object, its keys in JavaScript's order (see [`Value::object`]).
    Object(Vec<(String, Value)>),
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside a value.
    UnexpectedEnd,
    /// A marker this codec does not accept (reserved `0xc1`, or an extension type other than
    /// records and `undefined`).
    Unsupported(String),
    /// A string is not UTF-8.
    InvalidUtf8,
    /// A record definition's keys are not an array of strings, or a map key is not a string.
    InvalidKeys,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes remain after the value.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd => write!(f, "msgpack input ends inside a value"),
            DecodeError::Unsupported(what) => write!(f, "unsupported msgpack input: {what}"),
            DecodeError::InvalidUtf8 => write!(f, "msgpack string is not valid UTF-8"),
            DecodeError::InvalidKeys => write!(f, "msgpack record or map keys must be strings"),
            DecodeError::TooDeep => write!(f, "msgpack value nested deeper than {MAX_DEPTH} levels"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes follow the msgpack value"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// An object from entries in the order given, then put in JavaScript's property order:
    /// keys that are array indices first, ascending, then the others in insertion order. A
    /// repeated key keeps its first position and its last value, as `JSON.parse` does.
    pub fn object(entries: Vec<(String, Value)>) -> Value {
        let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
        // An index, not a scan per key: a hostile map with 100,000 keys must stay linear.
        let mut index: HashMap<String, usize> = HashMap::with_capacity(entries.len());
        for (key, value) in entries {
            match index.get(&key) {
                Some(&i) => out[i].1 = value,
                None => {
                    index.insert(key.clone(), out.len());
                    out.push((key, value));
                }
            }
        }
        if out.iter().any(|(k, _)| array_index(k).is_some()) {
            // Stable sort: indices ascending, everything else keeps its order after them.
            out.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |i| (0, i)));
        }
        Value::Object(out)
    }

    /// The value of `key` if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// JavaScript's array-index keys: canonical decimal integers below 2^32 − 1.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&n| n < u32::MAX as u64)
        .map(|n| n as u32)
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes exactly one value from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader::new(bytes);
    let value = reader.value(0)?;
    match reader.rest() {
        0 => Ok(value),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Decodes every value in `bytes`, one after the other (msgpackr's `unpackMultiple`), each
/// starting with no records.
pub fn decode_multiple(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let mut reader = Reader::new(&bytes[pos..]);
        out.push(reader.value(0)?);
        pos += reader.pos;
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Keys of the records defined so far, by id − `0x40`.
    records: Vec<Option<Vec<String>>>,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader {
            bytes,
            pos: 0,
            records: vec![None; RECORD_IDS],
        }
    }

    fn rest(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest() < n {
            return Err(DecodeError::UnexpectedEnd);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(u16::from_be_bytes(self.be()?) as usize)
    }

    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_be_bytes(self.be()?) as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let byte = self.byte()?;
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(n) if n >= FIRST_RECORD_ID => match self.records[(n - FIRST_RECORD_ID) as usize].clone() {
                Some(keys) => self.record_values(keys, depth)?,
                // msgpackr reads an id with no record as the plain integer.
                None => Value::Number(n as f64),
            },
            Marker::FixPos(n) => Value::Number(n as f64),
            Marker::FixNeg(n) => Value::Number(n as f64),
            Marker::Null => Value::Null,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::Number(self.byte()? as f64),
            Marker::U16 => Value::Number(u16::from_be_bytes(self.be()?) as f64),
            Marker::U32 => Value::Number(u32::from_be_bytes(self.be()?) as f64),
            Marker::U64 => Value::BigInt(u64::from_be_bytes(self.be()?) as i128),
            Marker::I8 => Value::Number(i8::from_be_bytes(self.be()?) as f64),
            Marker::I16 => Value::Number(i16::from_be_bytes(self.be()?) as f64),
            Marker::I32 => Value::Number(i32::from_be_bytes(self.be()?) as f64),
            Marker::I64 => Value::BigInt(i64::from_be_bytes(self.be()?) as i128),
            Marker::F32 => Value::Number(f32::from_be_bytes(self.be()?) as f64),
            Marker::F64 => Value::Number(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => self.string(n as usize)?,
            Marker::Str8 => {
                let n = self.byte()? as usize;
                self.string(n)?
            }
            Marker::Str16 => {
                let n = self.len16()?;
                self.string(n)?
            }
            Marker::Str32 => {
                let n = self.len32()?;
                self.string(n)?
            }
            Marker::Bin8 => {
                let n = self.byte()? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::Bin16 => {
                let n = self.len16()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::Bin32 => {
                let n = self.len32()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::FixArray(n) => self.array(n as usize, depth)?,
            Marker::Array16 => {
                let n = self.len16()?;
                self.array(n, depth)?
            }
            Marker::Array32 => {
                let n = self.len32()?;
                self.array(n, depth)?
            }
            Marker::FixMap(n) => self.map(n as usize, depth)?,
            Marker::Map16 => {
                let n = self.len16()?;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = self.len32()?;
                self.map(n, depth)?
            }
            Marker::FixExt1 => {
                let [ty, data] = self.be::<2>()?;
                match ty as i8 {
                    RECORD_EXT if (FIRST_RECORD_ID..FIRST_RECORD_ID + RECORD_IDS as u8).contains(&data) => {
                        let keys = self.record_keys(depth)?;
                        self.records[(data - FIRST_RECORD_ID) as usize] = Some(keys.clone());
                        self.record_values(keys, depth)?
                    }
                    RECORD_EXT => {
                        return Err(DecodeError::Unsupported(format!("record id {data:#04x}")));
                    }
                    0 => Value::Undefined,
                    other => return Err(DecodeError::Unsupported(format!("extension type {other}"))),
                }
            }
            Marker::FixExt2 | Marker::FixExt4 | Marker::FixExt8 | Marker::FixExt16 => {
                let ty = self.byte()? as i8;
                // Two-byte record ids only occur with shared structures, which Effect RPC does
                // not configure.
                return Err(DecodeError::Unsupported(format!("extension type {ty}")));
            }
            Marker::Ext8 | Marker::Ext16 | Marker::Ext32 => {
                return Err(DecodeError::Unsupported(format!("extension marker {byte:#04x}")));
            }
            Marker::Reserved => return Err(DecodeError::Unsupported("reserved marker 0xc1".into())),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, DecodeError> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(|s| Value::Str(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        // Every element takes at least one byte, so a length beyond the input is an error
        // before anything is allocated for it.
        if n > self.rest() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, DecodeError> {
        if n > self.rest() / 2 {
            return Err(DecodeError::UnexpectedEnd);
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = match self.value(depth + 1)? {
                Value::Str(s) => s,
                _ => return Err(DecodeError::InvalidKeys),
            };
            entries.push((key, self.value(depth + 1)?));
        }
        Ok(Value::object(entries))
    }

    fn record_keys(&mut self, depth: usize) -> Result<Vec<String>, DecodeError> {
        match self.value(depth + 1)? {
            Value::Array(items) => items
                .into_iter()
                .map(|k| match k {
                    Value::Str(s) => Ok(s),
                    _ => Err(DecodeError::InvalidKeys),
                })
                .collect(),
            _ => Err(DecodeError::InvalidKeys),
        }
    }

    fn record_values(&mut self, keys: Vec<String>, depth: usize) -> Result<Value, DecodeError> {
        if keys.len() > self.rest() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::object(entries))
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes one value as msgpackr's `pack` does, starting with no records.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut writer = Writer::default();
    writer.value(value);
    writer.out
}

#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    /// Record id of each key list defined so far.
    ids: HashMap<Vec<String>, u8>,
    /// Key list holding each id, by id − `0x40`, so a recycled id forgets its old list.
    by_id: Vec<Option<Vec<String>>>,
    next_id: u8,
}

// Writing to a Vec cannot fail; rmp's functions return Results only for fallible writers.
macro_rules! put {
    ($e:expr) => {{
        let _ = $e;
    }};
}

impl Writer {
    fn value(&mut self, value: &Value) {
        use rmp::encode as e;
        let out = &mut self.out;
        match value {
            Value::Undefined => {
                put!(e::write_ext_meta(out, 1, 0));
                out.push(0);
            }
            Value::Null => put!(e::write_nil(out)),
            Value::Bool(b) => put!(e::write_bool(out, *b)),
            Value::Number(n) => write_number(out, *n),
            Value::BigInt(n) => {
                if let Ok(n) = i64::try_from(*n) {
                    put!(e::write_i64(out, n));
                } else if let Ok(n) = u64::try_from(*n) {
                    put!(e::write_u64(out, n));
                } else {
                    // Not reachable from decoded input (64-bit markers only); msgpackr throws.
                    write_number(out, *n as f64);
                }
            }
            Value::Str(s) => {
                put!(e::write_str(out, s));
            }
            Value::Bin(b) => {
                put!(e::write_bin(out, b));
            }
            Value::Array(items) => {
                // msgpackr: fixarray, array16, array32 — the shortest, as rmp writes.
                put!(e::write_array_len(out, items.len() as u32));
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(entries) => {
                let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
                match self.ids.get(&keys) {
                    Some(&id) => self.out.push(id),
                    None => self.define_record(keys),
                }
                for (_, v) in entries {
                    self.value(v);
                }
            }
        }
    }

    fn define_record(&mut self, keys: Vec<String>) {
        if self.by_id.is_empty() {
            self.by_id = vec![None; RECORD_IDS];
            self.next_id = FIRST_RECORD_ID;
        }
        let id = if (self.next_id as usize) >= FIRST_RECORD_ID as usize + RECORD_IDS {
            FIRST_RECORD_ID
        } else {
            self.next_id
        };
        self.next_id = id + 1;
        let slot = (id - FIRST_RECORD_ID) as usize;
        if let Some(old) = self.by_id[slot].take() {
            self.ids.remove(&old);
        }
        put!(rmp::encode::write_ext_meta(&mut self.out, 1, RECORD_EXT));
        self.out.push(id);
        put!(rmp::encode::write_array_len(&mut self.out, keys.len() as u32));
        for key in &keys {
            put!(rmp::encode::write_str(&mut self.out, key));
        }
        self.ids.insert(keys.clone(), id);
        self.by_id[slot] = Some(keys);
    }
}

/// A JavaScript number as msgpackr writes it: integers that fit 32 bits as integers (positive
/// fixints only below `0x40`, the rest being record ids), everything else as `float64`.
fn write_number(out: &mut Vec<u8>, n: f64) {
    use rmp::encode as e;
    if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) {
        // -0.0 lands here too: `-0 >>> 0 === -0` holds in JavaScript, so it is written as 0.
        let n = n as u32;
        if n < FIRST_RECORD_ID as u32 {
            put!(e::write_pfix(out, n as u8));
        } else if n < 0x100 {
            put!(e::write_u8(out, n as u8));
        } else if n < 0x10000 {
            put!(e::write_u16(out, n as u16));
        } else {
            put!(e::write_u32(out, n));
        }
    } else if n.fract() == 0.0 && (i32::MIN as f64..0.0).contains(&n) {
        let n = n as i32;
        if n >= -0x20 {
            put!(e::write_nfix(out, n as i8));
        } else if n >= -0x80 {
            put!(e::write_i8(out, n as i8));
        } else if n >= -0x8000 {
            put!(e::write_i16(out, n as i16));
        } else {
            put!(e::write_i32(out, n));
        }
    } else {
        put!(e::write_f64(out, n));
    }
}

// ---------------------------------------------------------------------------------------------
// JSON bridge
// ---------------------------------------------------------------------------------------------

impl Value {
    /// JSON text as `JSON.stringify` writes this value: `undefined` members are left out,
    /// `undefined` array items, NaN and infinities become `null`, bytes become an object of
    /// index keys (as a `Uint8Array` does), numbers are written the JavaScript way.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.push_json(&mut out);
        out
    }

    fn push_json(&self, out: &mut String) {
        use crate::util::json::push_str_literal;
        match self {
            Value::Undefined | Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => push_js_number(out, *n),
            Value::BigInt(n) => out.push_str(&n.to_string()),
            Value::Str(s) => push_str_literal(out, s),
            Value::Bin(bytes) => {
                out.push('{');
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("\"{i}\":{b}"));
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.push_json(out);
                }
                out.push(']');
            }
            Value::Object(entries) => {
                out.push('{');
                let mut first = true;
                for (k, v) in entries {
                    if matches!(v, Value::Undefined) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    push_str_literal(out, k);
                    out.push(':');
                    v.push_json(out);
                }
                out.push('}');
            }
        }
    }

    /// Parses JSON text into the value `JSON.parse` would produce (numbers as `f64`, object keys
    /// in JavaScript's order).
    pub fn from_json(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// A number as JavaScript's `Number.prototype.toString` writes it, for the values JSON carries.
fn push_js_number(out: &mut String, n: f64) {
    if !n.is_finite() {
        out.push_str("null");
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        // Integral and below 1e21: plain digits (f64 formats integers exactly with {:.0}).
        out.push_str(&format!("{:.0}", if n == 0.0 { 0.0 } else { n }));
    } else {
        // serde_json (ryu) gives the shortest round-tripping digits, as JavaScript does; only
        // the exponent spelling differs ("1e21" vs "1e+21").
        let s = serde_json::Number::from_f64(n)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".into());
        match s.find('e') {
            Some(i) if !s[i + 1..].starts_with(['-', '+']) => {
                out.push_str(&s[..=i]);
                out.push('+');
                out.push_str(&s[i + 1..]);
            }
            _ => out.push_str(&s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Number(n as f64))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
                Ok(Value::Number(n as f64))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
                Ok(Value::Number(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Value, E> {
                Ok(Value::Str(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Value::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    entries.push((k, v));
                }
                Ok(Value::object(entries))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_take_msgpackr_markers() {
        let cases: &[(f64, &[u8])] = &[
            (0.0, &[0x00]),
            (-0.0, &[0x00]),
            (63.0, &[0x3f]),
            (64.0, &[0xcc, 0x40]),
            (255.0, &[0xcc, 0xff]),
            (256.0, &[0xcd, 0x01, 0x00]),
            (65536.0, &[0xce, 0, 1, 0, 0]),
            (-1.0, &[0xff]),
            (-32.0, &[0xe0]),
            (-33.0, &[0xd0, 0xdf]),
            (-129.0, &[0xd1, 0xff, 0x7f]),
            (4294967296.0, &[0xcb, 0x41, 0xf0, 0, 0, 0, 0, 0, 0]),
        ];
        for (n, bytes) in cases {
            assert_eq!(encode(&Value::Number(*n)), *bytes, "{n}");
            assert_eq!(decode(bytes).unwrap(), Value::Number(if *n == 0.0 { 0.0 } else { *n }));
        }
    }

    #[test]
    fn objects_follow_javascript_key_order() {
        let v = Value::from_json(r#"{"b":1,"2":2,"a":3,"1":4,"01":5,"b":6}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"1":4,"2":2,"b":6,"a":3,"01":5}"#);
    }

    #[test]
    fn js_number_text() {
        for (n, s) in [
            (1e21, "1e+21"),
            (1.5, "1.5"),
            (1e-7, "1e-7"),
            (123456.789, "123456.789"),
            (-0.0, "0"),
        ] {
            assert_eq!(Value::Number(n).to_json(), s);
        }
        assert_eq!(Value::Number(9007199254740991.0).to_json(), "9007199254740991");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(decode(&[0x92, 0x01]), Err(DecodeError::UnexpectedEnd));
        assert_eq!(decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]), Err(DecodeError::UnexpectedEnd));
        assert!(matches!(decode(&[0xc1]), Err(DecodeError::Unsupported(_))));
        assert_eq!(
            decode(&[0xd4, 0x72, 0x40, 0x91, 0x01, 0x00]),
            Err(DecodeError::InvalidKeys)
        );
        assert_eq!(decode(&[0xa1, 0xff]), Err(DecodeError::InvalidUtf8));
        assert_eq!(decode(&[0x01, 0x02]), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(decode(&vec![0x91; 1000]), Err(DecodeError::TooDeep));
        // An id with no record is the plain integer.
        assert_eq!(decode(&[0x41]), Ok(Value::Number(65.0)));
    }
}
