//! Load-time edits that make fixed input dimensions of a model free.
//!
//! Why: ONNX Runtime refuses inputs whose shape differs from the one a graph declares, and
//! some exported graphs declare more than they need:
//! - `fr_feature.onnx` declares a batch of 1 (`[1, 3, 112, 112]`, and a `Reshape` to
//!   `[1, -1]` before its output), so faces could only be embedded one run at a time;
//! - YuNet declares a 640x640 input, while the network is fully convolutional and runs on any
//!   size that is a multiple of 32.
//!
//! The edits name those dimensions symbolically instead, drop the declared shapes of the outputs
//! and of the intermediate values (ONNX Runtime infers them again), and, for the batch, turn a
//! `Reshape` to a constant shape starting with 1 into one that keeps dimension 0 (`0` in a
//! `Reshape` shape copies the input's dimension). Whether the edited graph computes the same
//! is checked by tests on the real models (batch N against N runs of batch 1).

use std::collections::HashMap;

use super::proto::{
    edit_model_graph, encode_int64_tensor, fields, put_bytes, text, Graph, Values, DIM_PARAM,
    DIM_VALUE, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_OUTPUT, GRAPH_VALUE_INFO, SHAPE_DIM,
    TENSOR_TYPE_SHAPE, TYPE_TENSOR, VALUE_INFO_NAME, VALUE_INFO_TYPE, WIRE_LEN,
};

/// Which input dimensions are made free at load time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DynamicAxes {
    /// None: the graph as declared.
    #[default]
    AsDeclared,
    /// Dimension 0 (the batch) of every input; constant `Reshape` shapes starting with 1 keep
    /// dimension 0 instead.
    Batch,
    /// Dimensions 2 and 3 (height and width of `NCHW`) of every 4-D input.
    Spatial,
}

/// Given a value's name and its encoded `TensorShapeProto`: the new shape, `Some(None)` to
/// remove it, `None` when it cannot be read.
type ShapeEdit<'a> = dyn FnMut(&str, &[u8]) -> Option<Option<Vec<u8>>> + 'a;

/// `ValueInfoProto` `info` with the shape of its tensor type replaced by `edit(name, shape)`.
/// `None` when `info` cannot be read.
fn edit_value_shape(info: &[u8], edit: &mut ShapeEdit<'_>) -> Option<Vec<u8>> {
    let info_fields = fields(info)?;
    let name = info_fields
        .iter()
        .find(|f| (f.number, f.wire) == (VALUE_INFO_NAME, WIRE_LEN))
        .map_or(Some(""), |f| text(f.payload))?;
    let mut out = Vec::with_capacity(info.len());
    for field in &info_fields {
        if (field.number, field.wire) != (VALUE_INFO_TYPE, WIRE_LEN) {
            out.extend_from_slice(field.encoded);
            continue;
        }
        let mut type_out = Vec::new();
        for type_field in fields(field.payload)? {
            if (type_field.number, type_field.wire) != (TYPE_TENSOR, WIRE_LEN) {
                type_out.extend_from_slice(type_field.encoded);
                continue;
            }
            let mut tensor_out = Vec::new();
            for tensor_field in fields(type_field.payload)? {
                if (tensor_field.number, tensor_field.wire) == (TENSOR_TYPE_SHAPE, WIRE_LEN) {
                    if let Some(shape) = edit(name, tensor_field.payload)? {
                        put_bytes(&mut tensor_out, TENSOR_TYPE_SHAPE, &shape);
                    }
                } else {
                    tensor_out.extend_from_slice(tensor_field.encoded);
                }
            }
            put_bytes(&mut type_out, TYPE_TENSOR, &tensor_out);
        }
        put_bytes(&mut out, VALUE_INFO_TYPE, &type_out);
    }
    Some(out)
}

/// `TensorShapeProto` `shape` with the fixed dimensions at `axes` replaced by symbolic ones
/// (named after `input` and the axis), and how many were replaced.
fn free_dims(input: &str, shape: &[u8], axes: &[usize]) -> Option<(Vec<u8>, usize)> {
    let shape_fields = fields(shape)?;
    let rank = shape_fields
        .iter()
        .filter(|f| (f.number, f.wire) == (SHAPE_DIM, WIRE_LEN))
        .count();
    let mut out = Vec::with_capacity(shape.len() + 32);
    let mut freed = 0;
    let mut axis = 0;
    for field in &shape_fields {
        if (field.number, field.wire) != (SHAPE_DIM, WIRE_LEN) {
            out.extend_from_slice(field.encoded);
            continue;
        }
        let fixed = fields(field.payload)?.iter().any(|f| f.number == DIM_VALUE);
        // Spatial axes only of 4-D inputs; the batch of any.
        let wanted = axes.contains(&axis) && (axes == [0] || rank == 4);
        if wanted && fixed {
            let mut dim = Vec::new();
            put_bytes(
                &mut dim,
                DIM_PARAM,
                format!("rollcall_{input}_{axis}").as_bytes(),
            );
            put_bytes(&mut out, SHAPE_DIM, &dim);
            freed += 1;
        } else {
            out.extend_from_slice(field.encoded);
        }
        axis += 1;
    }
    Some((out, freed))
}

/// The graph with `axes` made free (see the module documentation) and how many input
/// dimensions were freed, or why it could not be done.
fn free_graph(graph: &[u8], axes: DynamicAxes) -> Result<(Vec<u8>, usize), String> {
    let unreadable = || "its graph could not be read".to_string();
    let parsed = Graph::parse(graph).ok_or_else(unreadable)?;
    let axis_list: &[usize] = match axes {
        DynamicAxes::AsDeclared => &[],
        DynamicAxes::Batch => &[0],
        DynamicAxes::Spatial => &[2, 3],
    };
    let initializer_names: std::collections::HashSet<&str> =
        parsed.initializers.iter().map(|i| i.name).collect();

    // Reshapes to a constant shape [1, ...] keep the batch: [0, ...]. The shape constant is
    // rewritten in place when only such Reshapes read it.
    let mut batch_shapes: HashMap<&str, Vec<i64>> = HashMap::new();
    if axes == DynamicAxes::Batch {
        let shapes: HashMap<&str, &Vec<i64>> = parsed
            .initializers
            .iter()
            .filter_map(|i| match &i.values {
                Values::Int64(v) => Some((i.name, v)),
                _ => None,
            })
            .collect();
        for node in &parsed.nodes {
            for (k, input) in node.inputs.iter().enumerate() {
                let Some(shape) = shapes.get(input) else {
                    continue;
                };
                let reshape_shape = node.is("Reshape") && k == 1;
                if !reshape_shape {
                    if shape.first() == Some(&1) && shape.len() >= 2 {
                        // Read by something else too: cannot be changed safely.
                        return Err(format!("shape constant {input} is not only a Reshape's"));
                    }
                    continue;
                }
                let starts_with_one = shape.first() == Some(&1) && shape.len() >= 2;
                if node.int_attribute("allowzero").ok_or_else(unreadable)? == Some(1) {
                    if starts_with_one {
                        // A literal 1 that must stay: the batch cannot be freed.
                        return Err(format!("Reshape {} fixes dimension 0 to 1", node.name));
                    }
                    continue;
                }
                if starts_with_one {
                    let mut kept = (*shape).clone();
                    kept[0] = 0;
                    batch_shapes.insert(input, kept);
                }
            }
        }
    }

    let mut out = Vec::with_capacity(graph.len() + 256);
    let mut freed = 0;
    let mut initializer_index = 0;
    for field in &parsed.fields {
        match (field.number, field.wire) {
            (GRAPH_INPUT, WIRE_LEN) => {
                let mut edit = |name: &str, shape: &[u8]| {
                    if initializer_names.contains(name) {
                        return Some(Some(shape.to_vec()));
                    }
                    let (shape, count) = free_dims(name, shape, axis_list)?;
                    freed += count;
                    Some(Some(shape))
                };
                let info = edit_value_shape(field.payload, &mut edit).ok_or_else(unreadable)?;
                put_bytes(&mut out, GRAPH_INPUT, &info);
            }
            (GRAPH_OUTPUT, WIRE_LEN) => {
                let info = edit_value_shape(field.payload, &mut |_, _| Some(None))
                    .ok_or_else(unreadable)?;
                put_bytes(&mut out, GRAPH_OUTPUT, &info);
            }
            // Intermediate shapes are inferred again.
            (GRAPH_VALUE_INFO, _) => {}
            (GRAPH_INITIALIZER, WIRE_LEN) => {
                let initializer = &parsed.initializers[initializer_index];
                initializer_index += 1;
                match batch_shapes.get(initializer.name) {
                    Some(kept) => {
                        let dims: Vec<u64> = initializer.dims.iter().map(|&d| d as u64).collect();
                        put_bytes(
                            &mut out,
                            GRAPH_INITIALIZER,
                            &encode_int64_tensor(initializer.name, &dims, kept),
                        );
                    }
                    None => out.extend_from_slice(field.encoded),
                }
            }
            _ => out.extend_from_slice(field.encoded),
        }
    }
    Ok((out, freed))
}

/// The serialized ONNX model `model` with `axes` of its inputs made free (see the module
/// documentation) and how many input dimensions were freed (0 when they already were), or
/// why it could not be done.
pub(crate) fn free_input_axes(model: &[u8], axes: DynamicAxes) -> Result<(Vec<u8>, usize), String> {
    if axes == DynamicAxes::AsDeclared {
        return Ok((model.to_vec(), 0));
    }
    let mut failure = None;
    let edited = edit_model_graph(model, |graph| match free_graph(graph, axes) {
        Ok(done) => Some(done),
        Err(why) => {
            failure = Some(why);
            None
        }
    });
    edited.ok_or_else(|| failure.unwrap_or_else(|| "it is not a readable ONNX model".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::proto::test_models::{graph_of, model};
    use crate::runtime::proto::{
        encode_node, int_attribute, put_uint, GRAPH_NODE, TENSOR_TYPE_ELEM_TYPE,
    };

    /// A `TensorShapeProto` of fixed dimensions.
    fn fixed_shape(dims: &[u64]) -> Vec<u8> {
        let mut shape = Vec::new();
        for &d in dims {
            let mut dim = Vec::new();
            put_uint(&mut dim, DIM_VALUE, d);
            put_bytes(&mut shape, SHAPE_DIM, &dim);
        }
        shape
    }

    fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut tensor = Vec::new();
        put_uint(&mut tensor, TENSOR_TYPE_ELEM_TYPE, 1);
        put_bytes(&mut tensor, TENSOR_TYPE_SHAPE, &fixed_shape(dims));
        let mut type_proto = Vec::new();
        put_bytes(&mut type_proto, TYPE_TENSOR, &tensor);
        let mut info = Vec::new();
        put_bytes(&mut info, VALUE_INFO_NAME, name.as_bytes());
        put_bytes(&mut info, VALUE_INFO_TYPE, &type_proto);
        info
    }

    /// (name, dims; `None` for a symbolic dimension) of the graph's inputs or outputs.
    fn declared(graph: &[u8], number: u64) -> Vec<(String, Option<Vec<Option<u64>>>)> {
        let mut out = Vec::new();
        for field in fields(graph).unwrap() {
            if field.number != number {
                continue;
            }
            let mut name = String::new();
            let mut dims = None;
            for f in fields(field.payload).unwrap() {
                if f.number == VALUE_INFO_NAME {
                    name = text(f.payload).unwrap().to_string();
                }
                if f.number == VALUE_INFO_TYPE {
                    let tensor = fields(f.payload).unwrap().remove(0);
                    for t in fields(tensor.payload).unwrap() {
                        if t.number == TENSOR_TYPE_SHAPE {
                            let mut d = Vec::new();
                            for dim in fields(t.payload).unwrap() {
                                let v = fields(dim.payload).unwrap();
                                d.push(v.iter().find(|x| x.number == DIM_VALUE).map(|x| x.varint));
                            }
                            dims = Some(d);
                        }
                    }
                }
            }
            out.push((name, dims));
        }
        out
    }

    fn graph(shape_constant: &[i64], allowzero: bool) -> Vec<u8> {
        let mut graph = Vec::new();
        let attributes = if allowzero {
            vec![int_attribute("allowzero", 1)]
        } else {
            vec![]
        };
        put_bytes(
            &mut graph,
            GRAPH_NODE,
            &encode_node(
                &["input", "shape"],
                "output",
                "flat",
                "Reshape",
                &attributes,
            ),
        );
        put_bytes(
            &mut graph,
            GRAPH_INITIALIZER,
            &encode_int64_tensor("shape", &[shape_constant.len() as u64], shape_constant),
        );
        put_bytes(&mut graph, GRAPH_INPUT, &value_info("input", &[1, 3, 8, 8]));
        put_bytes(&mut graph, GRAPH_OUTPUT, &value_info("output", &[1, 192]));
        put_bytes(&mut graph, GRAPH_VALUE_INFO, &value_info("middle", &[1, 3]));
        graph
    }

    #[test]
    fn batch_is_freed_and_reshapes_keep_it() {
        let (edited, freed) =
            free_input_axes(&model(&graph(&[1, -1], false)), DynamicAxes::Batch).unwrap();
        assert_eq!(freed, 1);
        let g = graph_of(&edited);
        assert_eq!(
            declared(&g, GRAPH_INPUT),
            [(
                "input".to_string(),
                Some(vec![None, Some(3), Some(8), Some(8)])
            )]
        );
        // Output shapes are left to inference; value_info is gone.
        assert_eq!(declared(&g, GRAPH_OUTPUT), [("output".to_string(), None)]);
        assert!(declared(&g, GRAPH_VALUE_INFO).is_empty());
        let parsed = Graph::parse(&g).unwrap();
        assert_eq!(parsed.initializers[0].values, Values::Int64(vec![0, -1]));
        assert_eq!(parsed.nodes.len(), 1);
        // In an allowzero Reshape the 1 is literal: the batch cannot be freed.
        let e = free_input_axes(&model(&graph(&[1, -1], true)), DynamicAxes::Batch).unwrap_err();
        assert!(e.contains("fixes dimension 0"), "{e}");
        // A shape not starting with 1 needs no change.
        let (edited, freed) =
            free_input_axes(&model(&graph(&[-1, 192], true)), DynamicAxes::Batch).unwrap();
        assert_eq!(freed, 1);
        let parsed_graph = graph_of(&edited);
        let parsed = Graph::parse(&parsed_graph).unwrap();
        assert_eq!(parsed.initializers[0].values, Values::Int64(vec![-1, 192]));
    }

    #[test]
    fn spatial_axes_of_4d_inputs_are_freed() {
        let (edited, freed) =
            free_input_axes(&model(&graph(&[1, -1], false)), DynamicAxes::Spatial).unwrap();
        assert_eq!(freed, 2);
        let g = graph_of(&edited);
        assert_eq!(
            declared(&g, GRAPH_INPUT)[0].1,
            Some(vec![Some(1), Some(3), None, None])
        );
        // The reshape is untouched.
        let parsed = Graph::parse(&g).unwrap();
        assert_eq!(parsed.initializers[0].values, Values::Int64(vec![1, -1]));
        // Already free: nothing more to free, still a valid model.
        let (again, freed) = free_input_axes(&edited, DynamicAxes::Spatial).unwrap();
        assert_eq!(freed, 0);
        assert_eq!(graph_of(&again), g);
    }

    #[test]
    fn unreadable_models_are_errors() {
        assert!(free_input_axes(b"\xff\xff\xff", DynamicAxes::Batch).is_err());
        let input = model(&graph(&[1, -1], false));
        assert_eq!(
            free_input_axes(&input, DynamicAxes::AsDeclared).unwrap(),
            (input.clone(), 0)
        );
    }
}
