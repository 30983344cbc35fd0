//! Turns decoded pickles into state dicts: walking `nn.Module` object trees (`_modules`,
//! `_parameters`, `_buffers`) with PyTorch's dotted names, reading plain (Ordered)dict state
//! dicts, and extracting Ultralytics metadata (class names, model yaml, stride, task, args).

use serde_json::{Map, Number, Value as Json};

use crate::error::ErrorKind;
use crate::pickle::Value;
use crate::tensor::TensorRef;

/// Deepest module nesting accepted (real models are < 20 deep); guards against cyclic input.
const MAX_DEPTH: usize = 128;

/// Collects `(name, tensor)` pairs of an `nn.Module` object, in PyTorch's `state_dict()` order:
/// own parameters, own persistent buffers, then children.
pub(crate) fn module_state_dict(
    module: &Value,
    prefix: &str,
    out: &mut Vec<(String, TensorRef)>,
    depth: usize,
) -> Result<(), ErrorKind> {
    if depth > MAX_DEPTH {
        return Err(ErrorKind::Layout(format!(
            "module tree deeper than {MAX_DEPTH} at {prefix:?} (cyclic?)"
        )));
    }
    let non_persistent: Vec<String> = module
        .get("_non_persistent_buffers_set")
        .and_then(|s| s.seq_items())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for (field, skip) in [("_parameters", &[][..]), ("_buffers", &non_persistent[..])] {
        let Some(items) = module.get(field).and_then(|d| d.dict_items()) else {
            continue;
        };
        for (k, v) in items {
            let Some(name) = k.as_str() else { continue };
            if skip.iter().any(|s| s == name) {
                continue;
            }
            if let Value::Tensor(t) = v {
                out.push((format!("{prefix}{name}"), t.as_ref().clone()));
            }
        }
    }
    if let Some(children) = module.get("_modules").and_then(|d| d.dict_items()) {
        for (k, child) in children {
            let Some(name) = k.as_str() else { continue };
            if is_module(&child) {
                module_state_dict(&child, &format!("{prefix}{name}."), out, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// An object carrying the `nn.Module` bookkeeping dicts.
pub(crate) fn is_module(v: &Value) -> bool {
    matches!(v, Value::Object(_)) && v.get("_modules").is_some() && v.get("_parameters").is_some()
}

/// Entries of a plain state dict: a dict whose values are tensors (non-tensor entries such as
/// `_metadata` are skipped). `None` if the dict holds no tensor.
pub(crate) fn dict_state_dict(d: &Value) -> Option<Vec<(String, TensorRef)>> {
    let items = d.dict_items()?;
    let out: Vec<(String, TensorRef)> = items
        .into_iter()
        .filter_map(|(k, v)| match (k.as_str(), v) {
            (Some(name), Value::Tensor(t)) => Some((name.to_string(), t.as_ref().clone())),
            _ => None,
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Converts a pickle value to JSON for metadata (tensors become `{"tensor": shape}`, generic
/// objects `{"__class__": …, "state": …}`), with a depth limit.
pub fn to_json(v: &Value) -> Json {
    to_json_depth(v, 0)
}

fn to_json_depth(v: &Value, depth: usize) -> Json {
    if depth > 32 {
        return Json::Null;
    }
    let d = depth + 1;
    match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::BigInt(_) => Json::Null,
        Value::Float(x) => Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(format!("<{} bytes>", b.len())),
        Value::Tuple(_) | Value::List(_) | Value::Set(_) => Json::Array(
            v.seq_items()
                .unwrap_or_default()
                .iter()
                .map(|x| to_json_depth(x, d))
                .collect(),
        ),
        Value::Dict(_) => dict_json(v, d),
        Value::Class(c) => Json::String(c.qualified()),
        Value::Object(o) => {
            let o = o.borrow();
            let mut m = Map::new();
            m.insert("__class__".into(), Json::String(o.class.qualified()));
            if !o.args.is_empty() {
                m.insert(
                    "args".into(),
                    Json::Array(o.args.iter().map(|x| to_json_depth(x, d)).collect()),
                );
            }
            if !matches!(o.state, Value::None) {
                m.insert("state".into(), to_json_depth(&o.state, d));
            }
            if !o.dict_items.is_empty() {
                let dict = Value::Dict(std::rc::Rc::new(std::cell::RefCell::new(
                    o.dict_items.clone(),
                )));
                m.insert("items".into(), dict_json(&dict, d));
            }
            Json::Object(m)
        }
        Value::Storage(s) => Json::String(format!("<storage {}>", s.key)),
        Value::Tensor(t) => {
            let mut m = Map::new();
            m.insert(
                "tensor".into(),
                Json::Array(t.shape.iter().map(|&x| Json::Number(x.into())).collect()),
            );
            Json::Object(m)
        }
    }
}

fn dict_json(v: &Value, depth: usize) -> Json {
    let mut m = Map::new();
    for (k, val) in v.dict_items().unwrap_or_default() {
        let key = match &k {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(x) => x.to_string(),
            other => format!("{other:?}"),
        };
        m.insert(key, to_json_depth(&val, depth));
    }
    Json::Object(m)
}

/// Class names from Ultralytics' `names` (a dict `{0: "a", …}` or a list), indexed by class id.
/// Gaps in the ids are filled with `class<i>`.
pub(crate) fn class_names(v: &Value) -> Option<Vec<String>> {
    if let Some(items) = v.dict_items() {
        let mut pairs: Vec<(usize, String)> = Vec::new();
        for (k, name) in items {
            let id = k
                .as_int()
                .or_else(|| k.as_str().and_then(|s| s.parse().ok()))?;
            let id = usize::try_from(id).ok()?;
            if id > 1_000_000 {
                return None;
            }
            pairs.push((id, name.as_str()?.to_string()));
        }
        let n = pairs.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
        let mut names: Vec<String> = (0..n).map(|i| format!("class{i}")).collect();
        for (i, name) in pairs {
            names[i] = name;
        }
        return Some(names);
    }
    let seq = v.seq_items()?;
    seq.iter().map(|x| x.as_str().map(str::to_string)).collect()
}
