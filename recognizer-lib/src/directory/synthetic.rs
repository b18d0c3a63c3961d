//! Synthetic people for benchmarks of the directory and of everything that loads a gallery
//! (`rollcall bench directory`, the Lambda cold-start bench): reproducible pseudo-random unit
//! templates of any size, with enrolment samples and probe faces around them.
//!
//! Load and search costs depend on how many templates there are, not on whose faces they are,
//! so these stand in for a university's photos where only timing and memory are measured. A
//! genuine probe ([`synthetic_face`]) scores about 0.6 against its person's template and
//! strangers about 0 +- 0.05 at 512 dimensions: searches have one right answer to check.

use super::{EnrollmentSample, NewEnrollment};

/// The id of synthetic person `index` (`student-000042`).
pub fn synthetic_person_id(index: usize) -> String {
    format!("student-{index:06}")
}

/// A reproducible pseudo-random unit vector (xorshift64*).
fn unit_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..dim)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    normalised(v)
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / norm).collect()
}

/// Person `index`'s true face.
fn centre(index: usize, dim: usize) -> Vec<f32> {
    unit_vector(index as u64, dim)
}

/// A photo of synthetic person `index`: their face plus as much noise again (cosine about 0.7
/// to it, like genuine pairs of real photos); `seed` tells photos apart.
pub fn synthetic_face(index: usize, dim: usize, seed: u64) -> Vec<f32> {
    let noise = unit_vector(seed.wrapping_add(0x5EED_0000_0000), dim);
    normalised(
        centre(index, dim)
            .iter()
            .zip(&noise)
            .map(|(c, n)| c + n)
            .collect(),
    )
}

/// Synthetic person `index` enrolled from `samples` photos of `dim`-dimensional embeddings.
pub fn synthetic_enrollment(index: usize, samples: usize, dim: usize) -> NewEnrollment {
    let person = synthetic_person_id(index);
    let samples: Vec<EnrollmentSample> = (0..samples)
        .map(|k| EnrollmentSample {
            person_id: person.clone(),
            image: format!("{k}.jpg"),
            embedding: synthetic_face(index, dim, (index * 1000 + k) as u64),
        })
        .collect();
    let mut mean = vec![0f32; dim];
    for s in &samples {
        for (m, x) in mean.iter_mut().zip(&s.embedding) {
            *m += x;
        }
    }
    NewEnrollment {
        person_id: person,
        mean: normalised(mean),
        samples,
        photos_digest: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_people_are_reproducible_and_separable() {
        let a = synthetic_enrollment(3, 3, 64);
        assert_eq!(a, synthetic_enrollment(3, 3, 64));
        assert_eq!(a.person_id, "student-000003");
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f32>();
        let probe = synthetic_face(3, 64, 99);
        // A genuine photo resembles its person much more than another person.
        assert!(dot(&probe, &a.mean) > 0.5, "{}", dot(&probe, &a.mean));
        let b = synthetic_enrollment(4, 3, 64);
        assert!(dot(&probe, &b.mean).abs() < 0.4);
    }
}
