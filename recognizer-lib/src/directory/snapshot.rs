//! A gallery snapshot: every enrolled template in one blob, so a worker or a Lambda cold start
//! loads the gallery with one read instead of a scan of every person (and their samples).
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `RCGAL001` |
//! | 4 | length `H` of the header |
//! | `H` | header, JSON: `gallery_version`, `dimension`, `person_ids` (array), `image_counts` (array) |
//! | `4 * people * dimension` | the templates, one row of `f32`s per person, in `person_ids` order |
//!
//! The header's `gallery_version` is the directory's [gallery
//! version](super::PeopleDirectory::gallery_version) read *before* the templates were: a
//! snapshot whose version differs from the directory's current one is stale.

use serde::{Deserialize, Serialize};

use super::GalleryEntry;

const MAGIC: &[u8; 8] = b"RCGAL001";

/// Largest header accepted (30,000 ids of 128 bytes fit several times over).
const MAX_HEADER_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    gallery_version: u64,
    dimension: usize,
    person_ids: Vec<String>,
    image_counts: Vec<u32>,
}

/// A decoded snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct GallerySnapshot {
    /// The gallery version the templates belong to.
    pub gallery_version: u64,
    /// The templates, sorted by person id as [`PeopleDirectory::gallery`](super::PeopleDirectory::gallery) returns them.
    pub entries: Vec<GalleryEntry>,
}

/// Encode `entries` (all of one dimension) as a snapshot of `gallery_version`.
pub fn encode(gallery_version: u64, entries: &[GalleryEntry]) -> Result<Vec<u8>, String> {
    let dimension = entries.first().map_or(0, |e| e.embedding.len());
    if let Some(odd) = entries.iter().find(|e| e.embedding.len() != dimension) {
        return Err(format!(
            "template of {:?} has {} values, the others {dimension}",
            odd.person_id,
            odd.embedding.len()
        ));
    }
    let header = serde_json::to_vec(&Header {
        gallery_version,
        dimension,
        person_ids: entries.iter().map(|e| e.person_id.clone()).collect(),
        image_counts: entries.iter().map(|e| e.image_count).collect(),
    })
    .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(12 + header.len() + entries.len() * dimension * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for e in entries {
        for v in &e.embedding {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Decode a snapshot, refusing anything malformed (wrong magic, truncated, lengths that do not
/// add up, non-finite values) with the reason.
pub fn decode(bytes: &[u8]) -> Result<GallerySnapshot, String> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a rollcall gallery snapshot (bad magic)")?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("truncated before the header length")?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_HEADER_BYTES || len > rest.len() {
        return Err(format!(
            "header of {len} bytes does not fit in the {} that follow",
            rest.len()
        ));
    }
    let (header, matrix) = rest.split_at(len);
    let header: Header =
        serde_json::from_slice(header).map_err(|e| format!("unreadable header: {e}"))?;
    let people = header.person_ids.len();
    if header.image_counts.len() != people {
        return Err(format!(
            "{people} person ids but {} image counts",
            header.image_counts.len()
        ));
    }
    let expected = people
        .checked_mul(header.dimension)
        .and_then(|n| n.checked_mul(4))
        .ok_or("people x dimension overflows")?;
    if matrix.len() != expected {
        return Err(format!(
            "{} template bytes for {people} people of dimension {} ({expected} expected)",
            matrix.len(),
            header.dimension
        ));
    }
    if people > 0 && header.dimension == 0 {
        return Err("templates of dimension 0".to_string());
    }
    let mut entries = Vec::with_capacity(people);
    let rows = matrix.chunks_exact(header.dimension.max(1) * 4);
    for ((person_id, image_count), row) in header
        .person_ids
        .into_iter()
        .zip(header.image_counts)
        .zip(rows)
    {
        let embedding: Vec<f32> = row
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(format!("template of {person_id:?} has a non-finite value"));
        }
        entries.push(GalleryEntry {
            person_id,
            embedding,
            image_count,
        });
    }
    Ok(GallerySnapshot {
        gallery_version: header.gallery_version,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, embedding: &[f32]) -> GalleryEntry {
        GalleryEntry {
            person_id: id.into(),
            embedding: embedding.to_vec(),
            image_count: 3,
        }
    }

    #[test]
    fn round_trip() {
        let entries = vec![entry("ada", &[0.6, 0.8]), entry("bob", &[1.0, 0.0])];
        let bytes = encode(42, &entries).unwrap();
        let snapshot = decode(&bytes).unwrap();
        assert_eq!(snapshot.gallery_version, 42);
        assert_eq!(snapshot.entries, entries);
        let empty = decode(&encode(7, &[]).unwrap()).unwrap();
        assert_eq!(empty.gallery_version, 7);
        assert!(empty.entries.is_empty());
    }

    #[test]
    fn refuses_damaged_snapshots_with_the_reason() {
        let bytes = encode(1, &[entry("ada", &[0.6, 0.8])]).unwrap();
        let fails = |b: &[u8], needle: &str| {
            let e = decode(b).unwrap_err();
            assert!(e.contains(needle), "{e:?} should mention {needle:?}");
        };
        fails(b"", "magic");
        fails(b"PK\x03\x04 not it", "magic");
        fails(&bytes[..10], "header length");
        fails(&bytes[..bytes.len() - 1], "template bytes");
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        fails(&longer, "template bytes");
        let mut huge_header = bytes.clone();
        huge_header[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        fails(&huge_header, "does not fit");
        let mut nan = bytes.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        fails(&nan, "non-finite");
        assert!(encode(1, &[entry("a", &[1.0]), entry("b", &[1.0, 0.0])])
            .unwrap_err()
            .contains("\"b\""));
    }
}
