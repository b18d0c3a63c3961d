//! A load-time edit that flushes subnormal float weights to zero.
//!
//! Why: a float below `f32::MIN_POSITIVE` (~1.2e-38) in absolute value is *subnormal*, and many
//! x86 CPUs take a slow microcode path for every multiplication that reads one. `fr_feature.onnx`
//! (MobileFaceNet) carries 8,938 such weights and `fr_landmark.onnx` 26,567, left over from
//! training. ONNX Runtime's blocked-layout (NCHWc) convolution kernels stream those weights
//! through AVX-512 multiplications, so on an Ice Lake server the embedder's pointwise
//! convolutions ran at ~1 GFLOP/s: `fr_feature` took 58 ms per face blocked, 18 ms plain. With
//! the subnormal weights set to zero it takes 7.5 ms blocked (Python onnxruntime 1.31.1, one
//! thread, `PRelu` rewritten as [`super::prelu`] does). Setting the CPU's flush-to-zero and
//! denormals-are-zero flags instead did not help there (ONNX Runtime packs weights at session
//! creation), so the weights themselves are edited.
//!
//! The edit is exact for every practical purpose: a weight of magnitude below 1.2e-38 adds
//! less than 1e-30 to any activation of the networks here. Initializers stored outside the model
//! or in types other than `FLOAT` are left alone.

use super::proto::{edit_model_graph, encode_float_tensor, Graph};

/// Whether `value` is subnormal (non-zero and smaller in magnitude than the smallest normal).
fn is_subnormal(value: f32) -> bool {
    value != 0.0 && value.abs() < f32::MIN_POSITIVE
}

/// The graph with the subnormal values of its float initializers set to zero, and how many
/// values changed; `None` when there were none or the graph could not be read.
fn flush_graph(graph: &[u8]) -> Option<(Vec<u8>, usize)> {
    let parsed = Graph::parse(graph)?;
    let mut flushed = 0usize;
    let out = parsed.reencode(
        graph.len(),
        |_, _| None,
        |_, initializer| {
            let values = initializer.floats()?;
            let subnormals = values.iter().filter(|v| is_subnormal(**v)).count();
            // A tensor whose shape does not match its data is left for ONNX Runtime to refuse.
            if subnormals == 0 || initializer.element_count() != Some(values.len()) {
                return None;
            }
            let cleaned: Vec<f32> = values
                .iter()
                .map(|&v| if is_subnormal(v) { 0.0 } else { v })
                .collect();
            let dims: Vec<u64> = initializer.dims.iter().map(|&d| d as u64).collect();
            flushed += subnormals;
            Some(vec![encode_float_tensor(initializer.name, &dims, &cleaned)])
        },
    );
    (flushed > 0).then_some((out, flushed))
}

/// The serialized ONNX model `model` with every subnormal float weight set to zero (see the
/// module documentation), and how many were; `None` when there were none or the bytes could
/// not be read (load the original then).
pub(crate) fn flush_subnormal_weights(model: &[u8]) -> Option<(Vec<u8>, usize)> {
    edit_model_graph(model, flush_graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::proto::test_models::{graph_of, model, tensor};
    use crate::runtime::proto::{
        encode_node, fields, parse_initializer, put_bytes, put_uint, Values, GRAPH_INITIALIZER,
        GRAPH_NODE, MODEL_GRAPH, TENSOR_DATA_LOCATION,
    };

    const TINY: f32 = 1e-40;

    fn graph_with(initializers: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(&["input", "w"], "out", "conv", "Conv", &[]),
        );
        for initializer in initializers {
            put_bytes(&mut graph, GRAPH_INITIALIZER, initializer);
        }
        graph
    }

    fn initializer_values(model: &[u8]) -> Vec<(String, Values)> {
        fields(&graph_of(model))
            .unwrap()
            .iter()
            .filter(|f| f.number == GRAPH_INITIALIZER)
            .map(|f| parse_initializer(f.payload).unwrap())
            .map(|i| (i.name.to_string(), i.values))
            .collect()
    }

    #[test]
    fn subnormal_weights_become_zero_and_nothing_else_changes() {
        assert!(is_subnormal(TINY) && is_subnormal(-TINY));
        assert!(!is_subnormal(0.0) && !is_subnormal(f32::MIN_POSITIVE) && !is_subnormal(1e-30));
        let original = model(&graph_with(&[
            tensor("w", &[2, 3], &[0.5, TINY, -TINY, 1e-30, 0.0, -2.0]),
            tensor("b", &[2], &[1.0, 2.0]),
        ]));
        let (flushed, count) = flush_subnormal_weights(&original).expect("flushed");
        assert_eq!(count, 2);
        assert_eq!(
            initializer_values(&flushed),
            [
                (
                    "w".to_string(),
                    Values::Float(vec![0.5, 0.0, 0.0, 1e-30, 0.0, -2.0])
                ),
                ("b".to_string(), Values::Float(vec![1.0, 2.0])),
            ]
        );
        // The shape is kept, and so are the node and the model's other fields.
        let graph = graph_of(&flushed);
        let w = fields(&graph)
            .unwrap()
            .into_iter()
            .find(|f| f.number == GRAPH_INITIALIZER)
            .map(|f| parse_initializer(f.payload).unwrap().dims)
            .unwrap();
        assert_eq!(w, [2, 3]);
        assert!(fields(&graph)
            .unwrap()
            .iter()
            .any(|f| f.number == GRAPH_NODE));
        let top: Vec<u64> = fields(&flushed).unwrap().iter().map(|f| f.number).collect();
        assert_eq!(top, [1, 2, MODEL_GRAPH, 8]);
    }

    #[test]
    fn models_without_subnormals_or_unreadable_are_left_alone() {
        let clean = model(&graph_with(&[tensor("w", &[2], &[0.5, -1e-30])]));
        assert!(flush_subnormal_weights(&clean).is_none());
        // Data stored outside the model is not read, so not edited.
        let mut external = tensor("w", &[1], &[TINY]);
        put_uint(&mut external, TENSOR_DATA_LOCATION, 1);
        assert!(flush_subnormal_weights(&model(&graph_with(&[external]))).is_none());
        // Values that do not fill the declared shape: ONNX Runtime is left to refuse them.
        let short = tensor("w", &[3], &[TINY]);
        assert!(flush_subnormal_weights(&model(&graph_with(&[short]))).is_none());
        let mut cut = model(&graph_with(&[tensor("w", &[1], &[TINY])]));
        cut.truncate(cut.len() - 3);
        assert!(flush_subnormal_weights(&cut).is_none());
        assert!(flush_subnormal_weights(b"\xff\xff\xff").is_none());
        assert!(flush_subnormal_weights(&[]).is_none());
    }
}
