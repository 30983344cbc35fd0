//! A small ONNX graph builder: unique node and value names in torch-exporter style
//! (`/model.2/cv1/conv/Conv`, `/model.2/cv1/conv/Conv_output_0`), weights as `raw_data`
//! initializers, int64/float constants, typed attributes, and the final [`ModelProto`].

use std::collections::{HashMap, HashSet};

use super::proto::{
    AttributeProto, Dim, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, ValueInfoProto, attribute_type, data_type,
    tensor_value_info,
};

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `i`.
    Int(i64),
    /// `ints`.
    Ints(Vec<i64>),
    /// `f`.
    Float(f32),
    /// `s`.
    Str(String),
}

/// Builds an attribute proto.
pub fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => {
            a.i = Some(i);
            a.r#type = Some(attribute_type::INT);
        }
        Attr::Ints(v) => {
            a.ints = v;
            a.r#type = Some(attribute_type::INTS);
        }
        Attr::Float(f) => {
            a.f = Some(f);
            a.r#type = Some(attribute_type::FLOAT);
        }
        Attr::Str(s) => {
            a.s = Some(s.into_bytes());
            a.r#type = Some(attribute_type::STRING);
        }
    }
    a
}

/// A float tensor with its values as little-endian `raw_data`.
pub fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    let mut raw = Vec::with_capacity(data.len() * 4);
    for v in data {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// An int64 tensor with its values as little-endian `raw_data`.
pub fn i64_tensor(name: &str, dims: &[usize], data: &[i64]) -> TensorProto {
    let mut raw = Vec::with_capacity(data.len() * 8);
    for v in data {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::INT64),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// Accumulates nodes, initializers, inputs and outputs of one graph.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    /// Every value and node name in use.
    used: HashSet<String>,
    /// Next suffix per base name (`Conv`, `Conv_1`, …).
    counters: HashMap<String, usize>,
    /// Int64 constants already emitted, by content.
    i64_consts: HashMap<(Vec<usize>, Vec<i64>), String>,
    /// Float constants already emitted, by content (bit patterns).
    f32_consts: HashMap<(Vec<usize>, Vec<u32>), String>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// `base`, or `base_1`, `base_2`, … when taken; reserves the result.
    fn unique(&mut self, base: &str) -> String {
        if self.used.insert(base.to_string()) {
            return base.to_string();
        }
        loop {
            let n = self.counters.entry(base.to_string()).or_insert(0);
            *n += 1;
            let candidate = format!("{base}_{n}");
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
        }
    }

    /// Declares a float graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> String {
        self.used.insert(name.to_string());
        self.inputs
            .push(tensor_value_info(name, data_type::FLOAT, dims));
        name.to_string()
    }

    /// Declares a float graph output (the value must be produced under exactly this name).
    pub fn output(&mut self, name: &str, dims: &[Dim]) {
        self.outputs
            .push(tensor_value_info(name, data_type::FLOAT, dims));
    }

    /// Adds a float initializer named `name` (made unique) and returns its value name.
    pub fn weight(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.unique(name);
        self.initializers.push(f32_tensor(&name, dims, data));
        name
    }

    /// An int64 constant (shared between nodes with the same content).
    pub fn const_i64(&mut self, dims: &[usize], data: &[i64]) -> String {
        let key = (dims.to_vec(), data.to_vec());
        if let Some(name) = self.i64_consts.get(&key) {
            return name.clone();
        }
        let name = self.unique("onnx::Constant_i64");
        self.initializers.push(i64_tensor(&name, dims, data));
        self.i64_consts.insert(key, name.clone());
        name
    }

    /// A float constant (shared between nodes with the same content).
    pub fn const_f32(&mut self, dims: &[usize], data: &[f32]) -> String {
        let key = (dims.to_vec(), data.iter().map(|v| v.to_bits()).collect());
        if let Some(name) = self.f32_consts.get(&key) {
            return name.clone();
        }
        let name = self.unique("onnx::Constant_f32");
        self.initializers.push(f32_tensor(&name, dims, data));
        self.f32_consts.insert(key, name.clone());
        name
    }

    /// A scalar float constant.
    pub fn scalar_f32(&mut self, v: f32) -> String {
        self.const_f32(&[], &[v])
    }

    /// Adds a node `op` under `scope` with `n_out` outputs (named `<node>_output_<k>`, or
    /// `out_names` when given) and returns the output names.
    pub fn node_multi(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        n_out: usize,
        out_names: Option<&[&str]>,
    ) -> Vec<String> {
        let node_name = self.unique(&format!("{scope}/{op}"));
        let outputs: Vec<String> = match out_names {
            Some(names) => names
                .iter()
                .map(|n| {
                    self.used.insert(n.to_string());
                    n.to_string()
                })
                .collect(),
            None => (0..n_out)
                .map(|k| self.unique(&format!("{node_name}_output_{k}")))
                .collect(),
        };
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name: Some(node_name),
            op_type: Some(op.to_string()),
            attribute: attrs
                .into_iter()
                .map(|(name, value)| attribute(name, value))
                .collect(),
            ..Default::default()
        });
        outputs
    }

    /// Adds a single-output node and returns its output name.
    pub fn node(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        self.node_multi(scope, op, inputs, attrs, 1, None)
            .pop()
            .unwrap_or_default()
    }

    /// Adds a single-output node whose output is the graph value `out` (a graph output).
    pub fn node_into(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        out: &str,
    ) -> String {
        self.node_multi(scope, op, inputs, attrs, 1, Some(&[out]))
            .pop()
            .unwrap_or_default()
    }

    /// Number of nodes so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The graph.
    pub fn finish(self, name: &str) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: Some(name.to_string()),
            initializer: self.initializers,
            input: self.inputs,
            output: self.outputs,
            ..Default::default()
        }
    }
}

/// The IR version that goes with an opset of the default domain (onnx's version table, capped
/// at 10 as Ultralytics does for ONNX Runtime compatibility).
pub fn ir_version_for(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// Wraps a graph into a model with the default-domain `opset` and metadata entries in order.
pub fn model(graph: GraphProto, opset: i64, metadata: &[(String, String)]) -> ModelProto {
    ModelProto {
        ir_version: Some(ir_version_for(opset)),
        producer_name: Some("sightline".to_string()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        domain: None,
        model_version: None,
        doc_string: None,
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        metadata_props: metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_constants_shared() {
        let mut g = GraphBuilder::new();
        let x = g.input("images", &[Dim::Fixed(1)]);
        let a = g.node("/model.0/conv", "Conv", &[&x], vec![]);
        let b = g.node("/model.0/conv", "Conv", &[&a], vec![]);
        assert_eq!(a, "/model.0/conv/Conv_output_0");
        assert_eq!(b, "/model.0/conv/Conv_1_output_0");
        let c1 = g.const_i64(&[2], &[2, 2]);
        let c2 = g.const_i64(&[2], &[2, 2]);
        assert_eq!(c1, c2);
        let w = g.weight("w", &[1], &[1.0]);
        let w2 = g.weight("w", &[1], &[2.0]);
        assert_ne!(w, w2);
        let graph = g.finish("g");
        assert_eq!(graph.node.len(), 2);
        assert_eq!(graph.initializer.len(), 3);
    }

    #[test]
    fn ir_versions_follow_the_onnx_table() {
        assert_eq!(ir_version_for(17), 8);
        assert_eq!(ir_version_for(19), 9);
        assert_eq!(ir_version_for(21), 10);
    }
}
