//! The subset of ONNX's protobuf schema (`onnx.proto`, proto2 syntax) that our exporters write,
//! declared by hand with prost's derive. Field numbers are those of onnx.proto (onnx 1.23); a
//! message only declares the fields we use, which protobuf readers accept (unknown fields and
//! absent optional fields are both fine).
//!
//! Optional scalar and string fields are `Option`s so that a field we do not set is not written
//! at all (proto2 presence semantics, as the reference serializer does).

/// `TensorProto.DataType` values used here.
pub mod data_type {
    /// 32-bit IEEE float.
    pub const FLOAT: i32 = 1;
    /// 64-bit signed integer.
    pub const INT64: i32 = 7;
}

/// `AttributeProto.AttributeType` values used here.
pub mod attribute_type {
    /// `f`.
    pub const FLOAT: i32 = 1;
    /// `i`.
    pub const INT: i32 = 2;
    /// `s`.
    pub const STRING: i32 = 3;
    /// `t`.
    pub const TENSOR: i32 = 4;
    /// `floats`.
    pub const FLOATS: i32 = 6;
    /// `ints`.
    pub const INTS: i32 = 7;
}

/// `ModelProto`: the top-level container of an `.onnx` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    /// IR version of the file format.
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    /// Name of the tool that wrote the file.
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    /// Version of that tool.
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    /// Reverse-DNS model namespace.
    #[prost(string, optional, tag = "4")]
    pub domain: Option<String>,
    /// Model version.
    #[prost(int64, optional, tag = "5")]
    pub model_version: Option<i64>,
    /// Human-readable documentation.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// The computation graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Operator sets the graph uses.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Free-form key/value metadata (Ultralytics keeps its model metadata here).
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `OperatorSetIdProto`: one imported operator set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    /// Domain; empty or absent for the default `ai.onnx` domain.
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    /// Opset version.
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

/// `StringStringEntryProto`: one metadata entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// Value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `GraphProto`: nodes in topological order, initializers, inputs and outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    /// Nodes, topologically sorted.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// Constant tensors (weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Documentation.
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    /// Types of intermediate values (optional hints).
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

/// `NodeProto`: one operator application.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    /// Input value names (empty string: optional input left out).
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (unique in the graph, for diagnostics).
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    /// Operator, e.g. `Conv`.
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Documentation.
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    /// Operator domain; absent for `ai.onnx`.
    #[prost(string, optional, tag = "7")]
    pub domain: Option<String>,
}

/// `AttributeProto`: a named attribute of a node; `type` says which value field is used.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Float value.
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    /// Integer value.
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    /// String value (UTF-8 bytes).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub s: Option<Vec<u8>>,
    /// Tensor value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// Float list (proto2: not packed).
    #[prost(float, repeated, packed = "false", tag = "7")]
    pub floats: Vec<f32>,
    /// Integer list (proto2: not packed).
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    /// Documentation.
    #[prost(string, optional, tag = "13")]
    pub doc_string: Option<String>,
    /// Discriminator ([`attribute_type`]).
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
}

/// `TensorProto`: a dense tensor; our values live in `raw_data` (little-endian).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// Dimensions (proto2: not packed).
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    /// Element type ([`data_type`]).
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    /// Values as floats (packed in onnx.proto); unused by our writers, kept for readers.
    #[prost(float, repeated, packed = "true", tag = "4")]
    pub float_data: Vec<f32>,
    /// Values as int64 (packed in onnx.proto); unused by our writers, kept for readers.
    #[prost(int64, repeated, packed = "true", tag = "7")]
    pub int64_data: Vec<i64>,
    /// Name (the value name for initializers).
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// Values as little-endian bytes in row-major order.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
    /// Documentation.
    #[prost(string, optional, tag = "12")]
    pub doc_string: Option<String>,
}

/// `ValueInfoProto`: name and type of a graph input, output or intermediate value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    /// Documentation.
    #[prost(string, optional, tag = "3")]
    pub doc_string: Option<String>,
}

/// `TypeProto` (only the tensor case).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    /// The `value` oneof.
    #[prost(oneof = "type_proto::Value", tags = "1")]
    pub value: Option<type_proto::Value>,
    /// Denotation.
    #[prost(string, optional, tag = "6")]
    pub denotation: Option<String>,
}

/// Nested messages of [`TypeProto`].
pub mod type_proto {
    /// `TypeProto.Tensor`: element type and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        /// Element type ([`super::data_type`]).
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        /// Shape; absent for an unknown rank.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<super::TensorShapeProto>,
    }

    /// `TypeProto.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        /// A dense tensor.
        #[prost(message, tag = "1")]
        TensorType(Tensor),
    }
}

/// `TensorShapeProto`: dimensions, each a number, a symbol or unknown.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    /// Dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<tensor_shape_proto::Dimension>,
}

/// Nested messages of [`TensorShapeProto`].
pub mod tensor_shape_proto {
    /// One dimension.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// The `value` oneof (absent: unknown).
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
        /// Denotation.
        #[prost(string, optional, tag = "3")]
        pub denotation: Option<String>,
    }

    /// Oneof of [`Dimension`].
    pub mod dimension {
        /// `Dimension.value`.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A fixed size.
            #[prost(int64, tag = "1")]
            DimValue(i64),
            /// A symbolic size shared by name (e.g. `batch`).
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }
}

/// One dimension of a declared value shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A symbolic size (`dim_param`).
    Symbol(String),
}

impl Dim {
    /// A symbolic dimension.
    pub fn sym(name: &str) -> Self {
        Dim::Symbol(name.to_string())
    }
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

/// A float tensor value-info with the given dimensions.
pub fn tensor_value_info(name: &str, elem_type: i32, dims: &[Dim]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => dimension::Value::DimValue(*n as i64),
                Dim::Symbol(s) => dimension::Value::DimParam(s.clone()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem_type),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        doc_string: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn opset_import_encodes_as_protobuf_reference_bytes() {
        // OperatorSetIdProto{domain: "", version: 17}: field 1 (len 0), field 2 varint 17
        let op = OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        };
        assert_eq!(op.encode_to_vec(), vec![0x0a, 0x00, 0x10, 0x11]);
    }

    #[test]
    fn tensor_and_attribute_field_numbers() {
        let t = TensorProto {
            dims: vec![2],
            data_type: Some(data_type::FLOAT),
            name: Some("w".into()),
            raw_data: Some(vec![0, 0, 128, 63, 0, 0, 0, 64]),
            ..Default::default()
        };
        let bytes = t.encode_to_vec();
        // dims (1, varint, unpacked), data_type (2), name (8), raw_data (9)
        assert_eq!(
            bytes,
            vec![
                0x08, 0x02, 0x10, 0x01, 0x42, 0x01, b'w', 0x4a, 0x08, 0, 0, 128, 63, 0, 0, 0, 64
            ]
        );
        let a = AttributeProto {
            name: Some("pads".into()),
            ints: vec![1, 1],
            r#type: Some(attribute_type::INTS),
            ..Default::default()
        };
        // name (1), ints (8, unpacked: one key per element), type (20 → key 0xa0 0x01)
        assert_eq!(
            a.encode_to_vec(),
            vec![
                0x0a, 0x04, b'p', b'a', b'd', b's', 0x40, 0x01, 0x40, 0x01, 0xa0, 0x01, 0x07
            ]
        );
        let back = AttributeProto::decode(a.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back, a);
    }

    #[test]
    fn symbolic_and_fixed_dimensions() {
        let vi = tensor_value_info("x", data_type::FLOAT, &[Dim::sym("batch"), Dim::Fixed(3)]);
        let bytes = vi.encode_to_vec();
        let back = ValueInfoProto::decode(bytes.as_slice()).expect("decodes");
        let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(t)),
            ..
        }) = back.r#type
        else {
            panic!("no tensor type");
        };
        let dims = t.shape.expect("shape").dim;
        use tensor_shape_proto::dimension::Value;
        assert_eq!(dims[0].value, Some(Value::DimParam("batch".into())));
        assert_eq!(dims[1].value, Some(Value::DimValue(3)));
    }
}
