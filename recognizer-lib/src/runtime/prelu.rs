//! A load-time rewrite of `PRelu` into operators ONNX Runtime's CPU provider runs well.
//!
//! Why: `fr_feature.onnx` (MobileFaceNet) and MTCNN's networks apply a per-channel `PRelu` after
//! most convolutions. ONNX Runtime (1.31, one thread) runs `PRelu` through its generic broadcast
//! path at ~1 ns per value and, because `PRelu` has no blocked-layout (NCHWc) kernel, converts
//! the tensor out of and back into that layout around each one. Profiled on `fr_feature`:
//! `PRelu` 6.0 ms + layout conversions 0.9 ms of an 11.5 ms run, more than all 50 convolutions.
//!
//! The rewrite uses the identity `PRelu(y) = y + (1 - s) * Relu(-y)` (per channel slope `s`):
//!
//! ```text
//! y -> PRelu(slope) -> out      becomes      y -> Conv(depthwise 1x1, weight -1) -> Relu
//!                                              -> Conv(depthwise 1x1, weight 1 - s) -> Add(y) -> out
//! ```
//!
//! ONNX Runtime fuses the `Relu` and the `Add` into the depthwise convolutions and keeps the
//! blocked layout throughout. Outputs agree with the original graph to ~1e-6 (rounding of
//! `(1 - s) * -y` versus `s * y`); measured with Python onnxruntime 1.31, one thread:
//! `fr_feature` 10.9 -> 5.0 ms, P-Net at 150x150 2.3 -> 1.2 ms, R-Net (20 crops) 2.0 -> 0.9 ms,
//! O-Net (4 crops) 2.1 -> 1.1 ms.
//!
//! Only the obvious case is rewritten: a `PRelu` whose input comes straight from a 2-D `Conv`
//! (so the input is `[N, C, H, W]`) and whose slope is a float initializer of shape `[C, 1, 1]`
//! or `[1, C, 1, 1]` with `C` the convolution's output channels. Anything else, and any model
//! this minimal protobuf reader does not understand, is left as it is (the caller then loads
//! the file unchanged).

use std::collections::HashMap;

use super::proto::{
    edit_model_graph, encode_float_tensor, encode_node, int_attribute, ints_attribute, put_bytes,
    Graph, Initializer, Node, GRAPH_INITIALIZER,
};

/// Prefix of the names the rewrite invents (the rewrite is skipped if the model uses it).
const NAME_PREFIX: &str = "rollcall_prelu_";

/// A float tensor `[values.len(), 1, 1, 1]` (depthwise 1x1 convolution weights).
fn encode_depthwise_weight(name: &str, values: &[f32]) -> Vec<u8> {
    encode_float_tensor(name, &[values.len() as u64, 1, 1, 1], values)
}

/// The per-channel slopes of `prelu` when it can be rewritten (see the module documentation).
fn rewritable_slopes<'a>(
    prelu: &Node<'_>,
    producers: &HashMap<&str, &Node<'_>>,
    initializers: &HashMap<&str, &'a Initializer<'_>>,
) -> Option<&'a [f32]> {
    if !prelu.is("PRelu")
        || !prelu.attributes.is_empty()
        || prelu.inputs.len() != 2
        || prelu.outputs.len() != 1
    {
        return None;
    }
    let slope = initializers.get(prelu.inputs[1])?;
    let slopes = slope.floats()?;
    let channels = slopes.len() as i64;
    let per_channel = matches!(slope.dims.as_slice(), [c, 1, 1] | [1, c, 1, 1] if *c == channels);
    let conv = producers.get(prelu.inputs[0])?;
    let weight = initializers.get(*conv.inputs.get(1)?)?;
    let conv_2d = conv.is("Conv") && weight.dims.len() == 4 && weight.dims[0] == channels;
    (per_channel && conv_2d && channels > 0 && slopes.iter().all(|s| s.is_finite()))
        .then_some(slopes)
}

/// The graph with every rewritable `PRelu` replaced, and how many were; `None` when nothing
/// was rewritten or the graph could not be read.
fn rewrite_graph(graph: &[u8]) -> Option<(Vec<u8>, usize)> {
    let parsed = Graph::parse(graph)?;
    if parsed.names().any(|n| n.starts_with(NAME_PREFIX)) {
        return None;
    }
    let initializers: HashMap<&str, &Initializer<'_>> =
        parsed.initializers.iter().map(|i| (i.name, i)).collect();
    let mut producers: HashMap<&str, &Node<'_>> = HashMap::new();
    for node in &parsed.nodes {
        for output in &node.outputs {
            producers.insert(output, node);
        }
    }

    let mut new_initializers = Vec::new();
    let mut rewritten = 0usize;
    let mut out = parsed.reencode(
        graph.len() + graph.len() / 8,
        |_, node| {
            let slopes = rewritable_slopes(node, &producers, &initializers)?;
            let channels = slopes.len() as u64;
            let name = |part: &str| format!("{NAME_PREFIX}{rewritten}_{part}");
            let (negate_w, scale_w) = (name("negate_w"), name("scale_w"));
            let (negated, relu, scaled) = (name("negated"), name("relu"), name("scaled"));
            let depthwise = [
                int_attribute("group", channels),
                ints_attribute("kernel_shape", &[1, 1]),
            ];
            let (input, output) = (node.inputs[0], node.outputs[0]);
            let replacement = vec![
                encode_node(
                    &[input, &negate_w],
                    &negated,
                    &name("negate"),
                    "Conv",
                    &depthwise,
                ),
                encode_node(&[&negated], &relu, &name("relu_node"), "Relu", &[]),
                encode_node(
                    &[&relu, &scale_w],
                    &scaled,
                    &name("scale"),
                    "Conv",
                    &depthwise,
                ),
                encode_node(&[&scaled, input], output, &name("add"), "Add", &[]),
            ];
            new_initializers.push(encode_depthwise_weight(
                &negate_w,
                &vec![-1.0; slopes.len()],
            ));
            let one_minus: Vec<f32> = slopes.iter().map(|s| 1.0 - s).collect();
            new_initializers.push(encode_depthwise_weight(&scale_w, &one_minus));
            rewritten += 1;
            Some(replacement)
        },
        |_, _| None,
    );
    if rewritten == 0 {
        return None;
    }
    for bytes in &new_initializers {
        put_bytes(&mut out, GRAPH_INITIALIZER, bytes);
    }
    Some((out, rewritten))
}

/// The serialized ONNX model `model` with its rewritable `PRelu` nodes replaced (see the
/// module documentation), and how many were replaced; `None` when there was nothing to do or
/// the bytes could not be read (load the original then).
pub(crate) fn rewrite_prelu(model: &[u8]) -> Option<(Vec<u8>, usize)> {
    edit_model_graph(model, rewrite_graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::proto::test_models::{graph_of, model, tensor};
    use crate::runtime::proto::{fields, parse_initializer, parse_node, GRAPH_NODE, MODEL_GRAPH};

    /// input -> Conv(w: [2, 3, 3, 3]) -> conv_out -> PRelu(slope: 2 values) -> output, plus
    /// `extra` nodes, as a ModelProto.
    fn prelu_model(slope_dims: &[u64], extra: &[Vec<u8>]) -> Vec<u8> {
        model_with_conv(&[2, 3, 3, 3], slope_dims, extra)
    }

    fn model_with_conv(conv_dims: &[u64], slope_dims: &[u64], extra: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(&["input", "w"], "conv_out", "conv", "Conv", &[]),
        );
        put_bytes(&mut graph, 2, b"test graph");
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(&["conv_out", "slope"], "output", "prelu", "PRelu", &[]),
        );
        for node in extra {
            put_bytes(&mut graph, GRAPH_NODE, node);
        }
        let weights = vec![0.5; conv_dims.iter().product::<u64>() as usize];
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &tensor("w", conv_dims, &weights),
        );
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &tensor("slope", slope_dims, &[0.25, 1.5]),
        );
        model(&graph)
    }

    #[test]
    fn prelu_after_conv_becomes_depthwise_relu_and_add() {
        for dims in [[2u64, 1, 1].as_slice(), &[1, 2, 1, 1]] {
            let original = prelu_model(dims, &[]);
            let (rewritten, count) = rewrite_prelu(&original).expect("rewritten");
            assert_eq!(count, 1);
            let graph = graph_of(&rewritten);
            let graph_fields = fields(&graph).unwrap();
            let nodes: Vec<Node> = graph_fields
                .iter()
                .filter(|f| f.number == GRAPH_NODE)
                .map(|f| parse_node(f.payload).unwrap())
                .collect();
            let ops: Vec<&str> = nodes.iter().map(|n| n.op_type).collect();
            assert_eq!(ops, ["Conv", "Conv", "Relu", "Conv", "Add"]);
            assert_eq!(nodes[1].inputs[0], "conv_out");
            assert_eq!(nodes[1].attributes.len(), 2);
            assert_eq!(nodes[4].inputs, [nodes[3].outputs[0], "conv_out"]);
            assert_eq!(nodes[4].outputs, ["output"]);
            // Other graph fields survive.
            assert!(graph_fields
                .iter()
                .any(|f| f.number == 2 && f.payload == b"test graph"));
            let initializers: HashMap<&str, Initializer> = graph_fields
                .iter()
                .filter(|f| f.number == GRAPH_INITIALIZER)
                .map(|f| parse_initializer(f.payload).unwrap())
                .map(|i| (i.name, i))
                .collect();
            let negate = &initializers[nodes[1].inputs[1]];
            assert_eq!(negate.dims, [2, 1, 1, 1]);
            assert_eq!(negate.floats(), Some([-1.0, -1.0].as_slice()));
            let scale = &initializers[nodes[3].inputs[1]];
            assert_eq!(scale.floats(), Some([0.75, -0.5].as_slice()));
            // The other model fields are untouched, in order.
            let top: Vec<u64> = fields(&rewritten)
                .unwrap()
                .iter()
                .map(|f| f.number)
                .collect();
            assert_eq!(top, [1, 2, MODEL_GRAPH, 8]);
        }
    }

    #[test]
    fn the_identity_holds_for_slopes_of_any_sign() {
        for s in [0.25f32, -0.3, 1.5, 0.0] {
            for y in [-3.0f32, -0.01, 0.0, 0.7, 12.0] {
                let prelu = if y >= 0.0 { y } else { s * y };
                let rewritten = y + (1.0 - s) * (-y).max(0.0);
                assert!(
                    (prelu - rewritten).abs() <= 1e-6 * y.abs().max(1.0),
                    "{s} {y}"
                );
            }
        }
    }

    #[test]
    fn other_prelus_and_unreadable_models_are_left_alone() {
        // Slope along the last axis ([C]): broadcasting differs, not rewritten.
        assert!(rewrite_prelu(&prelu_model(&[2], &[])).is_none());
        // Channel count that does not match the convolution's, or a 1-D convolution.
        assert!(rewrite_prelu(&model_with_conv(&[3, 3, 3, 3], &[2, 1, 1], &[])).is_none());
        assert!(rewrite_prelu(&model_with_conv(&[2, 3, 3], &[2, 1, 1], &[])).is_none());
        let mut cut = prelu_model(&[2, 1, 1], &[]);
        cut.truncate(cut.len() - 3);
        assert!(rewrite_prelu(&cut).is_none(), "truncated model");
        assert!(rewrite_prelu(b"not a model at all \xff\xff\xff").is_none());
        assert!(rewrite_prelu(&[]).is_none());
        // A PRelu fed by something other than a Conv.
        let relu_fed = encode_node(&["relu_out", "slope"], "out2", "prelu2", "PRelu", &[]);
        let relu = encode_node(&["input"], "relu_out", "relu", "Relu", &[]);
        let (_, count) = rewrite_prelu(&prelu_model(&[2, 1, 1], &[relu, relu_fed])).unwrap();
        assert_eq!(count, 1, "only the PRelu after the Conv");
        // Names the rewrite would use already taken: nothing is rewritten.
        let clash = encode_node(&["input"], "rollcall_prelu_x", "n", "Relu", &[]);
        assert!(rewrite_prelu(&prelu_model(&[2, 1, 1], &[clash])).is_none());
    }
}
