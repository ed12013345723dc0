//! A scalar-only TensorBoard event-file writer (no maintained crate exists;
//! (no maintained crate exists for it).
//!
//! Record framing: `len: u64 LE`, `masked_crc32c(len bytes): u32 LE`, payload,
//! `masked_crc32c(payload): u32 LE`; the mask is `rotr(crc, 15) + 0xa282ead8`.
//! Payloads are hand-encoded protobuf `Event` messages: `wall_time` (field 1,
//! double), `step` (2, varint), `file_version` (3, string; first record only),
//! `summary` (5, message) with repeated `Value { tag: 1 string, simple_value: 2 float }`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// Appends scalar events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    out: BufWriter<File>,
    path: std::path::PathBuf,
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(buf, u64::from((field << 3) | wire));
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Encodes one `Event` (exposed for tests).
pub fn encode_event(
    wall: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(String, f32)],
) -> Vec<u8> {
    let mut ev = Vec::new();
    put_key(&mut ev, 1, 1);
    ev.extend_from_slice(&wall.to_le_bytes());
    put_key(&mut ev, 2, 0);
    put_varint(&mut ev, step as u64);
    if let Some(v) = file_version {
        put_bytes(&mut ev, 3, v.as_bytes());
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, x) in scalars {
            let mut value = Vec::new();
            put_bytes(&mut value, 1, tag.as_bytes());
            put_key(&mut value, 2, 5);
            value.extend_from_slice(&x.to_le_bytes());
            put_bytes(&mut summary, 1, &value);
        }
        put_bytes(&mut ev, 5, &summary);
    }
    ev
}

/// Frames a payload as one TFRecord.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(payload.len() + 16);
    let len = (payload.len() as u64).to_le_bytes();
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
    rec.extend_from_slice(payload);
    rec.extend_from_slice(&masked_crc(payload).to_le_bytes());
    rec
}

/// Splits a byte stream back into payloads, checking both CRCs.
pub fn read_records(bytes: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let head = bytes.get(i..i + 12).ok_or("truncated record header")?;
        let len_bytes: [u8; 8] = head[..8].try_into().map_err(|_| "bad header")?;
        let crc = u32::from_le_bytes(head[8..12].try_into().map_err(|_| "bad header")?);
        if crc != masked_crc(&len_bytes) {
            return Err(format!("length CRC mismatch at byte {i}"));
        }
        let len = u64::from_le_bytes(len_bytes) as usize;
        let payload = bytes.get(i + 12..i + 12 + len).ok_or("truncated payload")?;
        let pcrc = bytes
            .get(i + 12 + len..i + 16 + len)
            .ok_or("truncated payload CRC")?;
        if u32::from_le_bytes(pcrc.try_into().map_err(|_| "bad crc")?) != masked_crc(payload) {
            return Err(format!("payload CRC mismatch at byte {i}"));
        }
        out.push(payload.to_vec());
        i += 16 + len;
    }
    Ok(out)
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<secs>.grpo-rs` and writes the version record.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let secs = wall_time() as u64;
        // A resumed run may start within the same second as the interrupted
        // one: never truncate an existing event file, pick a fresh name.
        let mut n = 0u32;
        let (path, file) = loop {
            let name = if n == 0 {
                format!("events.out.tfevents.{secs}.grpo-rs")
            } else {
                format!("events.out.tfevents.{secs}.grpo-rs.{n}")
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(TrainError::io(&path, e)),
            }
        };
        let mut w = Self {
            out: BufWriter::new(file),
            path,
        };
        let first = encode_event(wall_time(), 0, Some("brain.Event:2"), &[]);
        w.write_payload(&first)?;
        Ok(w)
    }

    fn write_payload(&mut self, payload: &[u8]) -> Result<()> {
        self.out
            .write_all(&frame(payload))
            .and_then(|_| self.out.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }

    /// Writes one event holding the given scalars at `step`.
    pub fn write_scalars(&mut self, step: i64, scalars: &[(String, f32)]) -> Result<()> {
        let ev = encode_event(wall_time(), step, None, scalars);
        self.write_payload(&ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_test_vector() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn records_round_trip_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.write_scalars(3, &[("grpo/loss".into(), 0.25)]).unwrap();
        let path = w.path.clone();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        let recs = read_records(&bytes).unwrap();
        assert_eq!(recs.len(), 2);
        // The scalar's tag and value are in the second payload.
        let p = &recs[1];
        assert!(p.windows(9).any(|w| w == b"grpo/loss"));
        assert!(p.windows(4).any(|w| w == 0.25f32.to_le_bytes()));
        let last = bytes.len() - 6;
        bytes[last] ^= 0xff;
        assert!(read_records(&bytes).is_err());
    }
}
