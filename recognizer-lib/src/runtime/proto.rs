//! A minimal reader and writer of the ONNX protobuf messages the load-time graph edits touch
//! ([`super::prelu`], [`super::quantized`], [`super::dims`]).
//!
//! Only what those edits need is decoded; every other field is carried over byte for byte, so
//! an edit that changes one node leaves the rest of the model exactly as it was. Anything this
//! reader does not understand makes the edit give up (`None`), and the model is then loaded as
//! it is.

/// Protobuf wire types.
pub(super) const WIRE_VARINT: u8 = 0;
pub(super) const WIRE_I64: u8 = 1;
pub(super) const WIRE_LEN: u8 = 2;
pub(super) const WIRE_I32: u8 = 5;

/// Field numbers of the ONNX messages touched (onnx.proto3).
pub(super) const MODEL_GRAPH: u64 = 7;
pub(super) const GRAPH_NODE: u64 = 1;
pub(super) const GRAPH_INITIALIZER: u64 = 5;
pub(super) const GRAPH_INPUT: u64 = 11;
pub(super) const GRAPH_OUTPUT: u64 = 12;
pub(super) const GRAPH_VALUE_INFO: u64 = 13;
pub(super) const NODE_INPUT: u64 = 1;
pub(super) const NODE_OUTPUT: u64 = 2;
pub(super) const NODE_NAME: u64 = 3;
pub(super) const NODE_OP_TYPE: u64 = 4;
pub(super) const NODE_ATTRIBUTE: u64 = 5;
pub(super) const NODE_DOMAIN: u64 = 7;
pub(super) const ATTRIBUTE_NAME: u64 = 1;
pub(super) const ATTRIBUTE_I: u64 = 3;
pub(super) const ATTRIBUTE_INTS: u64 = 8;
pub(super) const ATTRIBUTE_TYPE: u64 = 20;
pub(super) const ATTRIBUTE_TYPE_INT: u64 = 2;
pub(super) const ATTRIBUTE_TYPE_INTS: u64 = 7;
pub(super) const TENSOR_DIMS: u64 = 1;
pub(super) const TENSOR_DATA_TYPE: u64 = 2;
pub(super) const TENSOR_SEGMENT: u64 = 3;
pub(super) const TENSOR_FLOAT_DATA: u64 = 4;
pub(super) const TENSOR_INT32_DATA: u64 = 5;
pub(super) const TENSOR_INT64_DATA: u64 = 7;
pub(super) const TENSOR_NAME: u64 = 8;
pub(super) const TENSOR_RAW_DATA: u64 = 9;
pub(super) const TENSOR_EXTERNAL_DATA: u64 = 13;
pub(super) const TENSOR_DATA_LOCATION: u64 = 14;
pub(super) const VALUE_INFO_NAME: u64 = 1;
pub(super) const VALUE_INFO_TYPE: u64 = 2;
pub(super) const TYPE_TENSOR: u64 = 1;
#[cfg(test)]
pub(super) const TENSOR_TYPE_ELEM_TYPE: u64 = 1;
pub(super) const TENSOR_TYPE_SHAPE: u64 = 2;
pub(super) const SHAPE_DIM: u64 = 1;
pub(super) const DIM_VALUE: u64 = 1;
pub(super) const DIM_PARAM: u64 = 2;

/// `TensorProto.DataType` values the edits read.
pub(super) const DATA_FLOAT: u64 = 1;
pub(super) const DATA_UINT8: u64 = 2;
pub(super) const DATA_INT8: u64 = 3;
pub(super) const DATA_INT64: u64 = 7;

/// One protobuf field: its number, wire type, the whole encoding (key included) and the value
/// (the varint, or the payload of a length-delimited or 32-bit field).
pub(super) struct Field<'a> {
    pub number: u64,
    pub wire: u8,
    pub encoded: &'a [u8],
    pub varint: u64,
    pub payload: &'a [u8],
}

pub(super) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message, in order; `None` when the bytes are not a well-formed message.
pub(super) fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let key = read_varint(buf, &mut pos)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let (mut varint, mut payload): (u64, &[u8]) = (0, &[]);
        match wire {
            WIRE_VARINT => varint = read_varint(buf, &mut pos)?,
            WIRE_I64 => pos = pos.checked_add(8).filter(|&p| p <= buf.len())?,
            WIRE_I32 => {
                let end = pos.checked_add(4).filter(|&p| p <= buf.len())?;
                payload = &buf[pos..end];
                pos = end;
            }
            WIRE_LEN => {
                let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|&p| p <= buf.len())?;
                payload = &buf[pos..end];
                pos = end;
            }
            // Groups (3, 4) are not used by ONNX; anything else is not protobuf.
            _ => return None,
        }
        out.push(Field {
            number,
            wire,
            encoded: &buf[start..pos],
            varint,
            payload,
        });
    }
    Some(out)
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) fn put_key(out: &mut Vec<u8>, number: u64, wire: u8) {
    put_varint(out, (number << 3) | u64::from(wire));
}

pub(super) fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_key(out, number, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(super) fn put_uint(out: &mut Vec<u8>, number: u64, value: u64) {
    put_key(out, number, WIRE_VARINT);
    put_varint(out, value);
}

pub(super) fn text(payload: &[u8]) -> Option<&str> {
    std::str::from_utf8(payload).ok()
}

/// What the edits need to know about a node.
pub(super) struct Node<'a> {
    pub inputs: Vec<&'a str>,
    pub outputs: Vec<&'a str>,
    pub name: &'a str,
    pub op_type: &'a str,
    pub domain: &'a str,
    /// The encoded `AttributeProto`s.
    pub attributes: Vec<&'a [u8]>,
}

impl Node<'_> {
    /// Whether the node is the standard-domain operator `op_type`.
    pub fn is(&self, op_type: &str) -> bool {
        self.op_type == op_type && matches!(self.domain, "" | "ai.onnx")
    }

    /// The integer attribute `name`: `Some(None)` when absent, `None` when present but not a
    /// single integer (or unreadable).
    pub fn int_attribute(&self, name: &str) -> Option<Option<i64>> {
        for attribute in &self.attributes {
            let mut found_name = None;
            let mut value = None;
            for field in fields(attribute)? {
                match (field.number, field.wire) {
                    (ATTRIBUTE_NAME, WIRE_LEN) => found_name = Some(text(field.payload)?),
                    (ATTRIBUTE_I, WIRE_VARINT) => value = Some(field.varint as i64),
                    _ => {}
                }
            }
            if found_name == Some(name) {
                return value.map(Some);
            }
        }
        Some(None)
    }
}

pub(super) fn parse_node(buf: &[u8]) -> Option<Node<'_>> {
    let mut node = Node {
        inputs: Vec::new(),
        outputs: Vec::new(),
        name: "",
        op_type: "",
        domain: "",
        attributes: Vec::new(),
    };
    for field in fields(buf)? {
        match (field.number, field.wire) {
            (NODE_INPUT, WIRE_LEN) => node.inputs.push(text(field.payload)?),
            (NODE_OUTPUT, WIRE_LEN) => node.outputs.push(text(field.payload)?),
            (NODE_NAME, WIRE_LEN) => node.name = text(field.payload)?,
            (NODE_OP_TYPE, WIRE_LEN) => node.op_type = text(field.payload)?,
            (NODE_DOMAIN, WIRE_LEN) => node.domain = text(field.payload)?,
            (NODE_ATTRIBUTE, WIRE_LEN) => node.attributes.push(field.payload),
            (NODE_ATTRIBUTE, _) => return None,
            _ => {}
        }
    }
    Some(node)
}

pub(super) fn encode_node(
    inputs: &[&str],
    output: &str,
    name: &str,
    op_type: &str,
    attributes: &[Vec<u8>],
) -> Vec<u8> {
    let mut out = Vec::new();
    for input in inputs {
        put_bytes(&mut out, NODE_INPUT, input.as_bytes());
    }
    put_bytes(&mut out, NODE_OUTPUT, output.as_bytes());
    put_bytes(&mut out, NODE_NAME, name.as_bytes());
    put_bytes(&mut out, NODE_OP_TYPE, op_type.as_bytes());
    for attribute in attributes {
        put_bytes(&mut out, NODE_ATTRIBUTE, attribute);
    }
    out
}

pub(super) fn int_attribute(name: &str, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, ATTRIBUTE_NAME, name.as_bytes());
    put_uint(&mut out, ATTRIBUTE_I, value);
    put_uint(&mut out, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INT);
    out
}

pub(super) fn ints_attribute(name: &str, values: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, ATTRIBUTE_NAME, name.as_bytes());
    for &value in values {
        put_uint(&mut out, ATTRIBUTE_INTS, value);
    }
    put_uint(&mut out, ATTRIBUTE_TYPE, ATTRIBUTE_TYPE_INTS);
    out
}

/// The values of an initializer that an edit can read.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Values {
    Float(Vec<f32>),
    /// 8-bit integers (`INT8` or `UINT8`), widened.
    Int8(Vec<i32>),
    Int64(Vec<i64>),
    /// Another type, or data stored outside the model.
    Other,
}

/// An initializer: name, shape and (when readable) values.
pub(super) struct Initializer<'a> {
    pub name: &'a str,
    pub dims: Vec<i64>,
    pub values: Values,
}

impl Initializer<'_> {
    /// The float values, if that is what the tensor holds.
    pub fn floats(&self) -> Option<&[f32]> {
        match &self.values {
            Values::Float(v) => Some(v),
            _ => None,
        }
    }

    /// Number of elements the shape announces (`None` on a negative or overflowing shape).
    pub fn element_count(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
    }
}

/// Packed or unpacked repeated varints of one field, appended to `out`.
fn repeated_varints(field: &Field<'_>, out: &mut Vec<u64>) -> Option<()> {
    match field.wire {
        WIRE_VARINT => out.push(field.varint),
        WIRE_LEN => {
            let mut pos = 0;
            while pos < field.payload.len() {
                out.push(read_varint(field.payload, &mut pos)?);
            }
        }
        _ => return None,
    }
    Some(())
}

pub(super) fn parse_initializer(buf: &[u8]) -> Option<Initializer<'_>> {
    let mut name = "";
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut raw: Option<&[u8]> = None;
    let mut float_data = Vec::new();
    let mut varint_data = Vec::new();
    let mut external = false;
    for field in fields(buf)? {
        match (field.number, field.wire) {
            (TENSOR_NAME, WIRE_LEN) => name = text(field.payload)?,
            (TENSOR_DIMS, _) => {
                let mut values = Vec::new();
                repeated_varints(&field, &mut values)?;
                dims.extend(values.into_iter().map(|d| d as i64));
            }
            (TENSOR_DATA_TYPE, WIRE_VARINT) => data_type = field.varint,
            (TENSOR_RAW_DATA, WIRE_LEN) => raw = Some(field.payload),
            (TENSOR_FLOAT_DATA, WIRE_LEN | WIRE_I32) => {
                float_data.extend(le_floats(field.payload)?)
            }
            (TENSOR_INT32_DATA | TENSOR_INT64_DATA, _) => {
                repeated_varints(&field, &mut varint_data)?
            }
            (TENSOR_SEGMENT | TENSOR_EXTERNAL_DATA, _) => external = true,
            (TENSOR_DATA_LOCATION, WIRE_VARINT) => external |= field.varint != 0,
            _ => {}
        }
    }
    let values = if external {
        Values::Other
    } else {
        match (data_type, raw) {
            (DATA_FLOAT, Some(raw)) => Values::Float(le_floats(raw)?),
            (DATA_FLOAT, None) => Values::Float(float_data),
            (DATA_INT8, Some(raw)) => {
                Values::Int8(raw.iter().map(|&b| i32::from(b as i8)).collect())
            }
            (DATA_UINT8, Some(raw)) => Values::Int8(raw.iter().map(|&b| i32::from(b)).collect()),
            // int32_data holds 8-bit values as (sign-extended) varints.
            (DATA_INT8, None) => Values::Int8(
                varint_data
                    .iter()
                    .map(|&v| i32::from(v as i64 as i8))
                    .collect(),
            ),
            (DATA_UINT8, None) => {
                Values::Int8(varint_data.iter().map(|&v| i32::from(v as u8)).collect())
            }
            (DATA_INT64, Some(raw)) if raw.len() % 8 == 0 => Values::Int64(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
            ),
            (DATA_INT64, None) => Values::Int64(varint_data.iter().map(|&v| v as i64).collect()),
            _ => Values::Other,
        }
    };
    Some(Initializer { name, dims, values })
}

pub(super) fn le_floats(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// A float tensor of shape `dims`, values stored raw (little-endian).
pub(super) fn encode_float_tensor(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4 + name.len() + 32);
    for &dim in dims {
        put_uint(&mut out, TENSOR_DIMS, dim);
    }
    put_uint(&mut out, TENSOR_DATA_TYPE, DATA_FLOAT);
    put_bytes(&mut out, TENSOR_NAME, name.as_bytes());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    put_bytes(&mut out, TENSOR_RAW_DATA, &raw);
    out
}

/// An int64 tensor of shape `dims`, values stored raw (little-endian).
pub(super) fn encode_int64_tensor(name: &str, dims: &[u64], values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &dim in dims {
        put_uint(&mut out, TENSOR_DIMS, dim);
    }
    put_uint(&mut out, TENSOR_DATA_TYPE, DATA_INT64);
    put_bytes(&mut out, TENSOR_NAME, name.as_bytes());
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    put_bytes(&mut out, TENSOR_RAW_DATA, &raw);
    out
}

/// The graph's nodes and initializers, parsed, with the graph's fields (for re-encoding).
pub(super) struct Graph<'a> {
    pub fields: Vec<Field<'a>>,
    pub nodes: Vec<Node<'a>>,
    pub initializers: Vec<Initializer<'a>>,
}

impl<'a> Graph<'a> {
    pub fn parse(graph: &'a [u8]) -> Option<Graph<'a>> {
        let fields = fields(graph)?;
        let mut nodes = Vec::new();
        let mut initializers = Vec::new();
        for field in &fields {
            match (field.number, field.wire) {
                (GRAPH_NODE, WIRE_LEN) => nodes.push(parse_node(field.payload)?),
                (GRAPH_INITIALIZER, WIRE_LEN) => {
                    initializers.push(parse_initializer(field.payload)?)
                }
                _ => {}
            }
        }
        Some(Graph {
            fields,
            nodes,
            initializers,
        })
    }

    /// Every name the graph uses (node inputs, outputs and names, initializer names).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .flat_map(|n| n.inputs.iter().chain(&n.outputs).copied().chain([n.name]))
            .chain(self.initializers.iter().map(|i| i.name))
    }

    /// The graph encoded again field by field, in order: each node and each initializer as
    /// `node` and `initializer` say (called with its index among the graph's nodes or
    /// initializers: `None` copies its bytes, `Some(messages)` writes those encoded messages
    /// of the same field in its place, none to drop it), every other field copied.
    pub fn reencode(
        &self,
        capacity: usize,
        mut node: impl FnMut(usize, &Node<'a>) -> Option<Vec<Vec<u8>>>,
        mut initializer: impl FnMut(usize, &Initializer<'a>) -> Option<Vec<Vec<u8>>>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity);
        let (mut node_index, mut initializer_index) = (0, 0);
        for field in &self.fields {
            let replacement = match (field.number, field.wire) {
                (GRAPH_NODE, WIRE_LEN) => {
                    node_index += 1;
                    node(node_index - 1, &self.nodes[node_index - 1])
                }
                (GRAPH_INITIALIZER, WIRE_LEN) => {
                    initializer_index += 1;
                    initializer(
                        initializer_index - 1,
                        &self.initializers[initializer_index - 1],
                    )
                }
                _ => None,
            };
            match replacement {
                None => out.extend_from_slice(field.encoded),
                Some(messages) => {
                    for message in &messages {
                        put_bytes(&mut out, field.number, message);
                    }
                }
            }
        }
        out
    }
}

/// Apply `edit` to the graph of the serialized `ModelProto` `model`; the other fields of the
/// model are copied unchanged, in order. `None` when the model cannot be read or `edit` returns
/// `None` (nothing to do); otherwise the new model and what `edit` returned with its graph.
pub(super) fn edit_model_graph<T>(
    model: &[u8],
    edit: impl FnOnce(&[u8]) -> Option<(Vec<u8>, T)>,
) -> Option<(Vec<u8>, T)> {
    let model_fields = fields(model)?;
    let mut graphs = model_fields
        .iter()
        .filter(|f| (f.number, f.wire) == (MODEL_GRAPH, WIRE_LEN));
    let graph = graphs.next()?;
    if graphs.next().is_some() {
        return None;
    }
    let (new_graph, outcome) = edit(graph.payload)?;
    let mut out =
        Vec::with_capacity(model.len() + new_graph.len().saturating_sub(graph.payload.len()));
    for field in &model_fields {
        if std::ptr::eq(field.encoded, graph.encoded) {
            put_bytes(&mut out, MODEL_GRAPH, &new_graph);
        } else {
            out.extend_from_slice(field.encoded);
        }
    }
    Some((out, outcome))
}

#[cfg(test)]
pub(super) mod test_models {
    //! Small hand-made ONNX messages for the edits' tests.
    use super::*;

    /// A float tensor with packed dims, as onnx's Python writer emits them.
    pub fn tensor(name: &str, dims: &[u64], values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut packed = Vec::new();
        for &d in dims {
            put_varint(&mut packed, d);
        }
        put_bytes(&mut out, TENSOR_DIMS, &packed);
        put_uint(&mut out, TENSOR_DATA_TYPE, DATA_FLOAT);
        put_bytes(&mut out, TENSOR_NAME, name.as_bytes());
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        put_bytes(&mut out, TENSOR_RAW_DATA, &raw);
        out
    }

    /// A ModelProto around `graph` with a few other fields before and after it.
    pub fn model(graph: &[u8]) -> Vec<u8> {
        let mut model = Vec::new();
        put_uint(&mut model, 1, 7);
        put_bytes(&mut model, 2, b"test");
        put_bytes(&mut model, MODEL_GRAPH, graph);
        put_bytes(&mut model, 8, &[0x10, 0x0c]);
        model
    }

    pub fn graph_of(model: &[u8]) -> Vec<u8> {
        fields(model)
            .unwrap()
            .into_iter()
            .find(|f| f.number == MODEL_GRAPH)
            .unwrap()
            .payload
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos), Some(value));
            assert_eq!(pos, buf.len());
        }
        assert_eq!(read_varint(&[0x80], &mut 0), None);
    }

    #[test]
    fn initializers_of_every_storage_are_read() {
        // int8 in raw_data.
        let mut t = Vec::new();
        put_uint(&mut t, TENSOR_DIMS, 3);
        put_uint(&mut t, TENSOR_DATA_TYPE, DATA_INT8);
        put_bytes(&mut t, TENSOR_NAME, b"q");
        put_bytes(&mut t, TENSOR_RAW_DATA, &[0x01, 0xff, 0x80]);
        let i = parse_initializer(&t).unwrap();
        assert_eq!((i.name, i.dims.as_slice()), ("q", [3i64].as_slice()));
        assert_eq!(i.values, Values::Int8(vec![1, -1, -128]));
        assert_eq!(i.element_count(), Some(3));
        // int8 in int32_data (packed, negative values as 10-byte varints).
        let mut t = Vec::new();
        put_uint(&mut t, TENSOR_DIMS, 2);
        put_uint(&mut t, TENSOR_DATA_TYPE, DATA_INT8);
        let mut packed = Vec::new();
        put_varint(&mut packed, 5);
        put_varint(&mut packed, (-3i64) as u64);
        put_bytes(&mut t, TENSOR_INT32_DATA, &packed);
        assert_eq!(
            parse_initializer(&t).unwrap().values,
            Values::Int8(vec![5, -3])
        );
        // uint8 raw.
        let mut t = Vec::new();
        put_uint(&mut t, TENSOR_DATA_TYPE, DATA_UINT8);
        put_bytes(&mut t, TENSOR_RAW_DATA, &[200]);
        assert_eq!(
            parse_initializer(&t).unwrap().values,
            Values::Int8(vec![200])
        );
        // int64, raw and as varints.
        let t = encode_int64_tensor("s", &[2], &[1, -1]);
        let i = parse_initializer(&t).unwrap();
        assert_eq!(i.values, Values::Int64(vec![1, -1]));
        let mut t = Vec::new();
        put_uint(&mut t, TENSOR_DATA_TYPE, DATA_INT64);
        put_uint(&mut t, TENSOR_INT64_DATA, (-1i64) as u64);
        assert_eq!(
            parse_initializer(&t).unwrap().values,
            Values::Int64(vec![-1])
        );
        // Floats, and data stored elsewhere.
        let t = test_models::tensor("f", &[1, 2], &[0.5, -2.0]);
        let i = parse_initializer(&t).unwrap();
        assert_eq!(i.floats(), Some([0.5, -2.0].as_slice()));
        let mut t = test_models::tensor("f", &[1], &[0.5]);
        put_uint(&mut t, TENSOR_DATA_LOCATION, 1);
        assert_eq!(parse_initializer(&t).unwrap().values, Values::Other);
    }

    #[test]
    fn int_attributes_are_found_by_name() {
        let node = encode_node(
            &["x"],
            "y",
            "n",
            "DequantizeLinear",
            &[int_attribute("axis", 1), int_attribute("block_size", 9)],
        );
        let node = parse_node(&node).unwrap();
        assert!(node.is("DequantizeLinear"));
        assert_eq!(node.int_attribute("block_size"), Some(Some(9)));
        assert_eq!(node.int_attribute("axis"), Some(Some(1)));
        assert_eq!(node.int_attribute("missing"), Some(None));
        let node = encode_node(&["x"], "y", "n", "Conv", &[ints_attribute("pads", &[1, 1])]);
        assert_eq!(parse_node(&node).unwrap().int_attribute("pads"), None);
    }

    #[test]
    fn editing_the_graph_keeps_the_other_model_fields() {
        let model = test_models::model(b"");
        let (edited, what) = edit_model_graph(&model, |graph| {
            Some((graph.iter().chain(b"\x0a\x00").copied().collect(), 7))
        })
        .unwrap();
        assert_eq!(what, 7);
        let top: Vec<u64> = fields(&edited).unwrap().iter().map(|f| f.number).collect();
        assert_eq!(top, [1, 2, MODEL_GRAPH, 8]);
        assert_eq!(test_models::graph_of(&edited), b"\x0a\x00");
        assert!(edit_model_graph(&model, |_| None::<(Vec<u8>, ())>).is_none());
        assert!(edit_model_graph(b"\xff\xff", |g| Some((g.to_vec(), ()))).is_none());
    }
}
