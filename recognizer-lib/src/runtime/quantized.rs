//! A load-time fold of `DequantizeLinear` over constant weights into plain float weights.
//!
//! Why: YuNet 2023mar as shipped (`face_detection_yunet_2023mar_int8bq.onnx`) stores its
//! convolution weights as int8 with one scale per block of each output channel
//! (`DequantizeLinear` with `block_size`, opset 21), and ONNX Runtime 1.31's CPU kernel refuses
//! them ("block_size must be 0 for per-tensor quantization"). Every such node computes a
//! constant, so it is replaced by an initializer holding that constant: the graph then loads,
//! and computes exactly what the dequantizing graph specifies (same float arithmetic as ONNX
//! Runtime's kernel: `(float)(q - zero_point) * scale`), at the cost of storing the weights as
//! f32 (YuNet: 122 kB -> ~240 kB).
//!
//! Folded: a `DequantizeLinear` whose input, scale and (optional) zero point are initializers,
//! the input 8-bit (int8 or uint8), the scale float, per tensor, per axis or blocked. Any other
//! `DequantizeLinear` is left in place.

use std::collections::{HashMap, HashSet};

use super::proto::{
    edit_model_graph, encode_float_tensor, put_bytes, Graph, Initializer, Values,
    GRAPH_INITIALIZER, GRAPH_OUTPUT, VALUE_INFO_NAME, WIRE_LEN,
};

/// The values of `DequantizeLinear(x, scale, zero)` with attributes `axis` and `block_size`
/// (ONNX opset 21 semantics), or `None` when the shapes do not fit one of its three modes.
fn dequantize(
    x: &Initializer<'_>,
    scale: &Initializer<'_>,
    zero: Option<&Initializer<'_>>,
    axis: i64,
    block_size: i64,
) -> Option<Vec<f32>> {
    let Values::Int8(q) = &x.values else {
        return None;
    };
    let scales = scale.floats()?;
    let zeros: Vec<i32> = match zero {
        Some(zero) => match &zero.values {
            Values::Int8(z) => z.clone(),
            _ => return None,
        },
        None => vec![0; scales.len()],
    };
    if q.len() != x.element_count()?
        || scales.len() != scale.element_count()?
        || zeros.len() != scales.len()
        || zero.is_some_and(|z| z.dims != scale.dims)
    {
        return None;
    }
    let rank = x.dims.len();
    let value = |k: usize, s: usize| (q[k] - zeros[s]) as f32 * scales[s];
    // Per tensor: one scale.
    if block_size == 0 && scales.len() == 1 && scale.dims.len() <= 1 {
        return Some((0..q.len()).map(|k| value(k, 0)).collect());
    }
    if rank == 0 {
        return None;
    }
    let axis = usize::try_from(if axis < 0 { axis + rank as i64 } else { axis })
        .ok()
        .filter(|&a| a < rank)?;
    let along = usize::try_from(x.dims[axis]).ok()?;
    let inner: usize = x.dims[axis + 1..]
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
    if along == 0 || inner == 0 {
        return Some(Vec::new());
    }
    if block_size == 0 {
        // Per axis: a 1-D scale along `axis`.
        if scale.dims.len() != 1 || scales.len() != along {
            return None;
        }
        return Some(
            (0..q.len())
                .map(|k| value(k, (k / inner) % along))
                .collect(),
        );
    }
    // Blocked: the scale has the input's shape, except `ceil(dim / block_size)` along `axis`.
    let block = usize::try_from(block_size).ok()?;
    let blocks = along.div_ceil(block);
    let same_elsewhere = scale.dims.len() == rank
        && scale
            .dims
            .iter()
            .zip(&x.dims)
            .enumerate()
            .all(|(i, (s, d))| {
                if i == axis {
                    *s == blocks as i64
                } else {
                    s == d
                }
            });
    if !same_elsewhere {
        return None;
    }
    Some(
        (0..q.len())
            .map(|k| {
                let (outer, within) = (k / (inner * along), k % inner);
                let a = (k / inner) % along;
                value(k, (outer * blocks + a / block) * inner + within)
            })
            .collect(),
    )
}

/// The graph with every foldable `DequantizeLinear` replaced by an initializer, and how many
/// were; `None` when there were none or the graph could not be read.
fn fold_graph(graph: &[u8]) -> Option<(Vec<u8>, usize)> {
    let parsed = Graph::parse(graph)?;
    let initializers: HashMap<&str, &Initializer<'_>> =
        parsed.initializers.iter().map(|i| (i.name, i)).collect();
    // A constant that is also a graph output stays a node output.
    let mut graph_outputs = HashSet::new();
    for field in &parsed.fields {
        if (field.number, field.wire) == (GRAPH_OUTPUT, WIRE_LEN) {
            for info in super::proto::fields(field.payload)? {
                if info.number == VALUE_INFO_NAME {
                    graph_outputs.insert(super::proto::text(info.payload)?);
                }
            }
        }
    }

    let mut folded: Vec<Option<Vec<u8>>> = Vec::with_capacity(parsed.nodes.len());
    for node in &parsed.nodes {
        let constant = (|| {
            if !node.is("DequantizeLinear")
                || !(2..=3).contains(&node.inputs.len())
                || node.outputs.len() != 1
                || graph_outputs.contains(node.outputs[0])
            {
                return None;
            }
            let x = initializers.get(node.inputs[0])?;
            let scale = initializers.get(node.inputs[1])?;
            let zero = match node.inputs.get(2) {
                Some(name) if !name.is_empty() => Some(*initializers.get(name)?),
                _ => None,
            };
            let axis = node.int_attribute("axis")?.unwrap_or(1);
            let block_size = node.int_attribute("block_size")?.unwrap_or(0);
            // Any other attribute (e.g. a later opset's output type) is not understood.
            if node.attributes.len()
                != usize::from(node.int_attribute("axis")?.is_some())
                    + usize::from(node.int_attribute("block_size")?.is_some())
            {
                return None;
            }
            let values = dequantize(x, scale, zero, axis, block_size)?;
            let dims: Vec<u64> = x.dims.iter().map(|&d| d as u64).collect();
            Some(encode_float_tensor(node.outputs[0], &dims, &values))
        })();
        folded.push(constant);
    }
    let count = folded.iter().flatten().count();
    if count == 0 {
        return None;
    }
    // Initializers read only by folded nodes are dropped with them.
    let still_read: HashSet<&str> = parsed
        .nodes
        .iter()
        .zip(&folded)
        .filter(|(_, f)| f.is_none())
        .flat_map(|(n, _)| n.inputs.iter().copied())
        .collect();
    let folded_inputs: HashSet<&str> = parsed
        .nodes
        .iter()
        .zip(&folded)
        .filter(|(_, f)| f.is_some())
        .flat_map(|(n, _)| n.inputs.iter().copied())
        .collect();

    let mut out = parsed.reencode(
        graph.len() * 2,
        |index, _| folded[index].is_some().then(Vec::new),
        |_, initializer| {
            let name = initializer.name;
            (folded_inputs.contains(name) && !still_read.contains(name)).then(Vec::new)
        },
    );
    for constant in folded.iter().flatten() {
        put_bytes(&mut out, GRAPH_INITIALIZER, constant);
    }
    Some((out, count))
}

/// The serialized ONNX model `model` with its constant `DequantizeLinear` nodes folded into
/// float initializers (see the module documentation), and how many were; `None` when there was
/// nothing to fold or the bytes could not be read (load the original then).
pub(crate) fn fold_dequantize(model: &[u8]) -> Option<(Vec<u8>, usize)> {
    edit_model_graph(model, fold_graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::proto::test_models::{graph_of, model, tensor};
    use crate::runtime::proto::{
        encode_node, int_attribute, parse_initializer, parse_node, put_uint, DATA_INT8, GRAPH_NODE,
        TENSOR_DATA_TYPE, TENSOR_DIMS, TENSOR_NAME, TENSOR_RAW_DATA,
    };

    fn int8_tensor(name: &str, dims: &[u64], values: &[i8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &d in dims {
            put_uint(&mut out, TENSOR_DIMS, d);
        }
        put_uint(&mut out, TENSOR_DATA_TYPE, DATA_INT8);
        put_bytes(&mut out, TENSOR_NAME, name.as_bytes());
        let raw: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        put_bytes(&mut out, TENSOR_RAW_DATA, &raw);
        out
    }

    fn init(bytes: &[u8]) -> Initializer<'_> {
        parse_initializer(bytes).unwrap()
    }

    /// The reference: each element's scale and zero point picked by its block index.
    #[test]
    fn blocked_per_axis_and_per_tensor_values() {
        // x: 2 x 5, blocks of 2 along axis 1 -> scale/zero 2 x 3.
        let q: Vec<i8> = vec![1, 2, 3, 4, 5, -1, -2, -3, -4, -128];
        let x = int8_tensor("x", &[2, 5], &q);
        let s = tensor("s", &[2, 3], &[0.5, 1.0, 2.0, 0.25, 4.0, 8.0]);
        let z = int8_tensor("z", &[2, 3], &[0, 1, 2, 0, -1, 3]);
        let y = dequantize(&init(&x), &init(&s), Some(&init(&z)), 1, 2).unwrap();
        // (q - zero) * scale, zero and scale of block k / 2 in each row:
        // row 0: (1, 2) z 0 s 0.5; (3, 4) z 1 s 1; (5) z 2 s 2;
        // row 1: (-1, -2) z 0 s 0.25; (-3, -4) z -1 s 4; (-128) z 3 s 8.
        let expected = [0.5, 1.0, 2.0, 3.0, 6.0, -0.25, -0.5, -8.0, -12.0, -1048.0];
        assert_eq!(y, expected);
        // Negative axis means the same.
        assert_eq!(
            dequantize(&init(&x), &init(&s), Some(&init(&z)), -1, 2).unwrap(),
            expected
        );
        // Blocked along axis 0 (blocks of 1 row), no zero point.
        let s0 = tensor("s", &[2, 5], &[1.0; 10]);
        let y = dequantize(&init(&x), &init(&s0), None, 0, 1).unwrap();
        assert_eq!(y, q.iter().map(|&v| f32::from(v)).collect::<Vec<_>>());
        // Per axis (axis 0, one scale per row).
        let s = tensor("s", &[2], &[2.0, -1.0]);
        let y = dequantize(&init(&x), &init(&s), None, 0, 0).unwrap();
        assert_eq!(&y[..3], [2.0, 4.0, 6.0]);
        assert_eq!(&y[5..7], [1.0, 2.0]);
        // Per tensor.
        let s = tensor("s", &[], &[0.5]);
        let y = dequantize(&init(&x), &init(&s), None, 1, 0).unwrap();
        assert_eq!(y[9], -64.0);
        // Shapes that fit no mode.
        let bad = tensor("s", &[2, 2], &[1.0; 4]);
        assert!(dequantize(&init(&x), &init(&bad), None, 1, 2).is_none());
        assert!(dequantize(&init(&x), &init(&bad), None, 1, 0).is_none());
        assert!(dequantize(&init(&x), &init(&s0), None, 2, 1).is_none());
        // A float input is not quantized.
        let f = tensor("x", &[2], &[1.0, 2.0]);
        assert!(dequantize(&init(&f), &init(&s), None, 0, 0).is_none());
    }

    #[test]
    fn constant_dequantize_nodes_become_initializers() {
        let mut graph = Vec::new();
        let dq = encode_node(
            &["w_q", "w_s", "w_z"],
            "w",
            "dq",
            "DequantizeLinear",
            &[int_attribute("axis", 1), int_attribute("block_size", 3)],
        );
        put_bytes(&mut graph, GRAPH_NODE, &dq);
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(&["input", "w"], "output", "conv", "Conv", &[]),
        );
        // One fed by a graph input cannot be folded.
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(&["input", "w_s"], "dynamic", "dq2", "DequantizeLinear", &[]),
        );
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &int8_tensor("w_q", &[2, 3], &[1, 2, 3, -1, -2, -3]),
        );
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &tensor("w_s", &[2, 1], &[0.5, 2.0]),
        );
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &int8_tensor("w_z", &[2, 1], &[1, 0]),
        );
        let (folded, count) = fold_dequantize(&model(&graph)).expect("folded");
        assert_eq!(count, 1);
        let parsed_graph = graph_of(&folded);
        let parsed = Graph::parse(&parsed_graph).unwrap();
        let ops: Vec<&str> = parsed.nodes.iter().map(|n| n.op_type).collect();
        assert_eq!(ops, ["Conv", "DequantizeLinear"]);
        let names: Vec<&str> = parsed.initializers.iter().map(|i| i.name).collect();
        // w_q and w_z were read by the folded node only; w_s is still read by dq2.
        assert_eq!(names, ["w_s", "w"]);
        let w = &parsed.initializers[1];
        assert_eq!(w.dims, [2, 3]);
        assert_eq!(
            w.floats(),
            Some([0.0, 0.5, 1.0, -2.0, -4.0, -6.0].as_slice())
        );
        // Nothing to fold: left alone.
        let mut plain = Vec::new();
        put_bytes(
            &mut plain,
            GRAPH_NODE,
            &encode_node(&["input"], "output", "relu", "Relu", &[]),
        );
        assert!(fold_dequantize(&model(&plain)).is_none());
        assert!(parse_node(&dq).is_some());
        assert!(fold_dequantize(b"\xff\xff").is_none());
    }
}
