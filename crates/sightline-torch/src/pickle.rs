//! A small Python pickle virtual machine (protocols 0–5, as written by `torch.save`).
//!
//! It never imports or executes anything: a `GLOBAL` becomes a [`Value::Class`] reference, and
//! calling it (`REDUCE`, `NEWOBJ`) either builds one of the few values we understand
//! (`collections.OrderedDict`, `builtins.set`, `torch.Size`, `_codecs.encode`, torch's tensor
//! rebuild functions, numpy scalars) or a generic [`Object`] that records the class, the call
//! arguments and the state given by `BUILD`. An unknown class is therefore never an error.
//! Persistent ids (`BINPERSID`) are resolved by a caller-supplied function (torch storages).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::tensor::{DType, StorageRef, TensorRef};

/// A decoded pickle value. Containers that pickle may mutate after creation (lists, dicts, sets,
/// objects) are shared (`Rc<RefCell<…>>`) so that memo references see the same object.
#[derive(Clone)]
pub enum Value {
    /// Python `None`.
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` that fits in 64 bits.
    Int(i64),
    /// Python `int` too large for 64 bits: little-endian two's-complement bytes.
    BigInt(Rc<Vec<u8>>),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(Rc<str>),
    /// Python `bytes` / `bytearray`.
    Bytes(Rc<Vec<u8>>),
    /// Python `tuple` (immutable).
    Tuple(Rc<Vec<Value>>),
    /// Python `list`.
    List(Rc<RefCell<Vec<Value>>>),
    /// Python `dict` / `OrderedDict`, in insertion order (a repeated key keeps both entries;
    /// lookups return the last one, as Python would).
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// Python `set` / `frozenset`.
    Set(Rc<RefCell<Vec<Value>>>),
    /// A class or function reference (`GLOBAL module name`), never resolved.
    Class(Rc<ClassRef>),
    /// An instance of a class we do not interpret.
    Object(Rc<RefCell<Object>>),
    /// A torch storage obtained from a persistent id.
    Storage(Rc<StorageRef>),
    /// A torch tensor view on a storage (from `torch._utils._rebuild_tensor_v2`).
    Tensor(Rc<TensorRef>),
}

/// A `module.name` class or function reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRef {
    /// Python module path, e.g. `torch.nn.modules.conv`.
    pub module: String,
    /// Attribute name, e.g. `Conv2d`.
    pub name: String,
}

impl ClassRef {
    /// `module.name`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// A generic Python object: its class, constructor arguments and state.
#[derive(Clone)]
pub struct Object {
    /// The class the object was built from.
    pub class: ClassRef,
    /// Arguments given to the class (REDUCE/NEWOBJ).
    pub args: Vec<Value>,
    /// State given by BUILD (usually the instance `__dict__`), `None` if none.
    pub state: Value,
    /// Items appended with APPEND(S) (list subclasses).
    pub list_items: Vec<Value>,
    /// Items set with SETITEM(S) (dict subclasses).
    pub dict_items: Vec<(Value, Value)>,
}

impl Object {
    /// Looks up an attribute in the object's state: the state dict, or the first element of a
    /// `(dict, slots)` state tuple, or the slots dict.
    pub fn attr(&self, name: &str) -> Option<Value> {
        match &self.state {
            Value::Dict(_) => self.state.get(name),
            Value::Tuple(t) => t.iter().find_map(|part| part.get(name)),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_depth(f, 0)
    }
}

impl Value {
    fn fmt_depth(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        if depth > 8 {
            return f.write_str("…");
        }
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "<int of {} bytes>", b.len()),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<bytes len {}>", b.len()),
            Value::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.fmt_depth(f, depth + 1)?;
                }
                f.write_str(")")
            }
            Value::List(items) | Value::Set(items) => {
                f.write_str("[")?;
                for (i, v) in items.borrow().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.fmt_depth(f, depth + 1)?;
                }
                f.write_str("]")
            }
            Value::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.borrow().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    k.fmt_depth(f, depth + 1)?;
                    f.write_str(": ")?;
                    v.fmt_depth(f, depth + 1)?;
                }
                f.write_str("}")
            }
            Value::Class(c) => write!(f, "<class {}>", c.qualified()),
            Value::Object(o) => write!(f, "<{} object>", o.borrow().class.qualified()),
            Value::Storage(s) => write!(f, "<storage {} {:?}>", s.key, s.dtype),
            Value::Tensor(t) => write!(f, "<tensor {:?} {:?}>", t.shape, t.storage.dtype),
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` (or a `bool`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The number as f64, if this is an `int` or `float`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The key-value pairs, if this is a dict (or a dict-like object).
    pub fn dict_items(&self) -> Option<Vec<(Value, Value)>> {
        match self {
            Value::Dict(d) => Some(d.borrow().clone()),
            Value::Object(o) if !o.borrow().dict_items.is_empty() => {
                Some(o.borrow().dict_items.clone())
            }
            _ => None,
        }
    }

    /// The elements, if this is a tuple, list or set.
    pub fn seq_items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.as_ref().clone()),
            Value::List(l) | Value::Set(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// Dict lookup by string key (the last matching entry wins). For objects, looks up the
    /// attribute in their state.
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => d
                .borrow()
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone()),
            Value::Object(o) => o.borrow().attr(key),
            _ => None,
        }
    }

    /// The class of an object (`module.name`), if this is one.
    pub fn class_name(&self) -> Option<String> {
        match self {
            Value::Object(o) => Some(o.borrow().class.qualified()),
            _ => None,
        }
    }
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode being executed.
    pub offset: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle error at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PickleError {}

/// Upper bound on the value stack and mark stack, so hostile input cannot exhaust memory
/// through them alone.
const MAX_STACK: usize = 1 << 24;

struct Machine<'a, F> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    persistent_load: F,
}

/// Decodes one pickle from `data`. `persistent_load` turns a persistent id into a value
/// (for torch: `('storage', storage_type, key, location, numel)` → a storage).
pub fn unpickle<F>(data: &[u8], persistent_load: F) -> Result<Value, PickleError>
where
    F: FnMut(Value) -> Result<Value, String>,
{
    let mut m = Machine {
        data,
        pos: 0,
        op_start: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        persistent_load,
    };
    m.run()
}

impl<F> Machine<'_, F>
where
    F: FnMut(Value) -> Result<Value, String>,
{
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_start,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => end,
            _ => {
                return self.err(format!(
                    "unexpected end of data (needed {n} bytes, {} left)",
                    self.data.len() - self.pos
                ));
            }
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32, PickleError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let n = self.u64()?;
        usize::try_from(n).or_else(|_| self.err("length does not fit in memory"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("unterminated text line");
        };
        let s = String::from_utf8_lossy(&rest[..nl]).into_owned();
        self.pos += nl + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(e) => self.err(format!("invalid UTF-8 string: {e}")),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<Value, PickleError> {
        let bytes = self.take(n)?.to_vec();
        Ok(Value::Bytes(Rc::new(bytes)))
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err("value stack too deep");
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        let offset = self.op_start;
        self.stack.last_mut().ok_or(PickleError {
            offset,
            message: "stack underflow".into(),
        })
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK on the stack");
        };
        if mark > self.stack.len() {
            return self.err("corrupt MARK");
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Result<Value, PickleError> {
        match self.memo.get(&key) {
            Some(v) => Ok(v.clone()),
            None => self.err(format!("memo key {key} was never stored")),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("MEMO/PUT with an empty stack");
        }
        if let Some(v) = self.stack.last() {
            self.memo.insert(key, v.clone());
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            let op = match self.data.get(self.pos) {
                Some(&op) => op,
                None => return self.err("unexpected end of data before STOP"),
            };
            self.pos += 1;
            match op {
                // ----- framing and protocol
                0x80 => {
                    // PROTO
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("unsupported pickle protocol {p}"));
                    }
                }
                0x95 => {
                    // FRAME: just a length hint
                    self.u64()?;
                }
                b'.' => {
                    // STOP
                    let v = self.pop()?;
                    return Ok(v);
                }
                // ----- stack manipulation
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return self.err("too many MARKs");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP (a bare POP right after MARK discards the mark, like Python)
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top_mut()?.clone();
                    self.push(v)?;
                }
                // ----- memo
                b'p' => {
                    let line = self.line()?;
                    let Ok(key) = line.trim().parse::<u64>() else {
                        return self.err(format!("bad PUT index {line:?}"));
                    };
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = u64::from(self.u8()?);
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = u64::from(self.u32()?);
                    self.memo_put(key)?;
                }
                0x94 => {
                    // MEMOIZE
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let line = self.line()?;
                    let Ok(key) = line.trim().parse::<u64>() else {
                        return self.err(format!("bad GET index {line:?}"));
                    };
                    let v = self.memo_get(key)?;
                    self.push(v)?;
                }
                b'h' => {
                    let key = u64::from(self.u8()?);
                    let v = self.memo_get(key)?;
                    self.push(v)?;
                }
                b'j' => {
                    let key = u64::from(self.u32()?);
                    let v = self.memo_get(key)?;
                    self.push(v)?;
                }
                // ----- constants
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'I' => {
                    let line = self.line()?;
                    let v = match line.trim() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => match s.parse::<i64>() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.err(format!("bad INT {s:?}")),
                        },
                    };
                    self.push(v)?;
                }
                b'J' => {
                    let v = self.i32()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'L' => {
                    let line = self.line()?;
                    let s = line.trim().trim_end_matches('L');
                    match s.parse::<i64>() {
                        Ok(i) => self.push(Value::Int(i))?,
                        Err(_) => self.push(Value::Str(Rc::from(s)))?,
                    }
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?.to_vec();
                    self.push(long_from_le(bytes))?;
                }
                0x8b => {
                    let n = self.i32()?;
                    let Ok(n) = usize::try_from(n) else {
                        return self.err("negative LONG4 length");
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push(long_from_le(bytes))?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))?;
                }
                b'F' => {
                    let line = self.line()?;
                    match line.trim().parse::<f64>() {
                        Ok(x) => self.push(Value::Float(x))?,
                        Err(_) => return self.err(format!("bad FLOAT {line:?}")),
                    }
                }
                // ----- strings and bytes
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                b'V' => {
                    let line = self.line()?;
                    self.push(Value::Str(Rc::from(line.as_str())))?;
                }
                b'S' => {
                    let line = self.line()?;
                    let s = line.trim();
                    let unquoted = s
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                        .unwrap_or(s);
                    self.push(Value::Str(Rc::from(unquoted)))?;
                }
                b'T' => {
                    let n = self.i32()?;
                    let Ok(n) = usize::try_from(n) else {
                        return self.err("negative BINSTRING length");
                    };
                    let bytes = self.take(n)?;
                    let s = String::from_utf8_lossy(bytes).into_owned();
                    self.push(Value::Str(Rc::from(s.as_str())))?;
                }
                b'U' => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    let s = String::from_utf8_lossy(bytes).into_owned();
                    self.push(Value::Str(Rc::from(s.as_str())))?;
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                0x8e | 0x96 => {
                    let n = self.len_u64()?;
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                // ----- containers
                b']' => self.push(Value::List(Rc::new(RefCell::new(Vec::new()))))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b')' => self.push(Value::Tuple(Rc::new(Vec::new())))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(Rc::new(items)))?;
                }
                b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Vec::new()))))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Value::Dict(Rc::new(RefCell::new(pairs))))?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                0x8f => self.push(Value::Set(Rc::new(RefCell::new(Vec::new()))))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    match self.top_mut()? {
                        Value::Set(s) => s.borrow_mut().extend(items),
                        _ => return self.err("ADDITEMS on a value that is not a set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::Set(Rc::new(RefCell::new(items))))?;
                }
                // ----- classes and objects
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Class(Rc::new(ClassRef { module, name })))?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(Value::Class(Rc::new(ClassRef {
                            module: m.to_string(),
                            name: n.to_string(),
                        })))?,
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = match args {
                        Value::Tuple(t) => t.as_ref().clone(),
                        other => vec![other],
                    };
                    let v = self.call(callable, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = args.seq_items().unwrap_or_default();
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                0x92 => {
                    // NEWOBJ_EX: cls, args, kwargs
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let args = args.seq_items().unwrap_or_default();
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return self.err("OBJ without a class");
                    }
                    let cls = items.remove(0);
                    let v = self.call(cls, items)?;
                    self.push(v)?;
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let args = self.pop_mark()?;
                    let cls = Value::Class(Rc::new(ClassRef { module, name }));
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top_mut()?.clone();
                    build(&target, state);
                }
                // ----- persistent ids
                b'Q' => {
                    let pid = self.pop()?;
                    match (self.persistent_load)(pid) {
                        Ok(v) => self.push(v)?,
                        Err(e) => return self.err(e),
                    }
                }
                b'P' => {
                    let line = self.line()?;
                    match (self.persistent_load)(Value::Str(Rc::from(line.as_str()))) {
                        Ok(v) => self.push(v)?,
                        Err(e) => return self.err(e),
                    }
                }
                0x82..=0x84 => {
                    return self.err("extension registry opcodes (EXT*) are not supported");
                }
                0x97 | 0x98 => {
                    return self.err("out-of-band buffers (protocol 5) are not supported");
                }
                other => return self.err(format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("odd number of items for a dict");
        }
        let mut out = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top_mut()? {
            Value::List(l) => l.borrow_mut().extend(items),
            Value::Set(s) => s.borrow_mut().extend(items),
            Value::Object(o) => o.borrow_mut().list_items.extend(items),
            _ => return self.err("APPEND on a value that is not a list"),
        }
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<(), PickleError> {
        match self.top_mut()? {
            Value::Dict(d) => d.borrow_mut().extend(pairs),
            Value::Object(o) => o.borrow_mut().dict_items.extend(pairs),
            _ => return self.err("SETITEM on a value that is not a dict"),
        }
        Ok(())
    }

    fn call(&self, callable: Value, args: Vec<Value>) -> Result<Value, PickleError> {
        let Value::Class(class) = callable else {
            return self.err(format!("cannot call {callable:?}"));
        };
        match call_known(&class, &args) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Ok(Value::Object(Rc::new(RefCell::new(Object {
                class: class.as_ref().clone(),
                args,
                state: Value::None,
                list_items: Vec::new(),
                dict_items: Vec::new(),
            })))),
            Err(e) => self.err(format!("{}: {e}", class.qualified())),
        }
    }
}

fn long_from_le(bytes: Vec<u8>) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut a = if negative { [0xffu8; 8] } else { [0u8; 8] };
        a[..bytes.len()].copy_from_slice(&bytes);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(Rc::new(bytes))
}

/// BUILD: sets the state of an object (other targets keep theirs, as they carry none we use).
fn build(target: &Value, state: Value) {
    match target {
        Value::Object(o) => {
            let mut o = o.borrow_mut();
            o.state = state;
        }
        Value::Dict(d) => {
            if let Some(items) = state.dict_items() {
                d.borrow_mut().extend(items);
            }
        }
        _ => {}
    }
}

fn int_list(v: &Value, what: &str) -> Result<Vec<i64>, String> {
    let items = v
        .seq_items()
        .ok_or_else(|| format!("{what} must be a tuple of ints, found {v:?}"))?;
    items
        .iter()
        .map(|x| {
            x.as_int()
                .ok_or_else(|| format!("{what} must hold ints, found {x:?}"))
        })
        .collect()
}

fn to_usizes(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("negative {what} {x}")))
        .collect()
}

/// Values built by callables we understand; `None` means "generic object".
fn call_known(class: &ClassRef, args: &[Value]) -> Result<Option<Value>, String> {
    let module = class.module.as_str();
    let name = class.name.as_str();
    let builtins = module == "builtins" || module == "__builtin__";
    let v = match (module, name) {
        ("collections", "OrderedDict") | (_, "dict") if module == "collections" || builtins => {
            let mut pairs = Vec::new();
            if let Some(first) = args.first() {
                if let Some(items) = first.dict_items() {
                    pairs = items;
                } else if let Some(seq) = first.seq_items() {
                    for p in seq {
                        if let Some(kv) = p.seq_items()
                            && kv.len() == 2
                        {
                            pairs.push((kv[0].clone(), kv[1].clone()));
                        }
                    }
                }
            }
            Value::Dict(Rc::new(RefCell::new(pairs)))
        }
        (_, "set" | "frozenset") if builtins => {
            let items = args.first().and_then(Value::seq_items).unwrap_or_default();
            Value::Set(Rc::new(RefCell::new(items)))
        }
        (_, "list") if builtins => {
            let items = args.first().and_then(Value::seq_items).unwrap_or_default();
            Value::List(Rc::new(RefCell::new(items)))
        }
        (_, "tuple") if builtins => {
            let items = args.first().and_then(Value::seq_items).unwrap_or_default();
            Value::Tuple(Rc::new(items))
        }
        (_, "bytearray" | "bytes") if builtins => match args.first() {
            Some(Value::Bytes(b)) => Value::Bytes(b.clone()),
            Some(Value::Str(s)) => {
                Value::Bytes(Rc::new(s.chars().map(|c| c as u32 as u8).collect()))
            }
            _ => Value::Bytes(Rc::new(Vec::new())),
        },
        ("_codecs", "encode") => match args.first() {
            // protocol 2 pickles bytes as _codecs.encode(latin1_text, 'latin1')
            Some(Value::Str(s)) => {
                Value::Bytes(Rc::new(s.chars().map(|c| c as u32 as u8).collect()))
            }
            _ => return Ok(None),
        },
        ("torch", "Size") => {
            let items = args.first().and_then(Value::seq_items).unwrap_or_default();
            Value::Tuple(Rc::new(items))
        }
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            if args.len() < 4 {
                return Err(format!("expected at least 4 arguments, got {}", args.len()));
            }
            let Value::Storage(storage) = &args[0] else {
                return Err(format!("first argument is not a storage: {:?}", args[0]));
            };
            let offset = args[1]
                .as_int()
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| format!("bad storage offset {:?}", args[1]))?;
            let shape = to_usizes(&int_list(&args[2], "size")?, "size")?;
            let stride = to_usizes(&int_list(&args[3], "stride")?, "stride")?;
            if shape.len() != stride.len() {
                return Err(format!(
                    "size has {} dims but stride has {}",
                    shape.len(),
                    stride.len()
                ));
            }
            Value::Tensor(Rc::new(TensorRef {
                storage: storage.clone(),
                offset,
                shape,
                stride,
            }))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            match args.first() {
                Some(t @ Value::Tensor(_)) => t.clone(),
                _ => return Err("parameter data is not a tensor".into()),
            }
        }
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => {
            match numpy_scalar(args) {
                Some(v) => v,
                None => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

/// `numpy.core.multiarray.scalar(dtype, bytes)` → a Python number when the dtype is a plain
/// little-endian (or native) int/float.
fn numpy_scalar(args: &[Value]) -> Option<Value> {
    let Value::Object(dtype) = args.first()? else {
        return None;
    };
    let code = dtype.borrow().args.first()?.as_str()?.to_string();
    let bytes = match args.get(1)? {
        Value::Bytes(b) => b.clone(),
        _ => return None,
    };
    let b = bytes.as_slice();
    let v = match (code.as_str(), b.len()) {
        ("f8", 8) => Value::Float(f64::from_le_bytes(b.try_into().ok()?)),
        ("f4", 4) => Value::Float(f64::from(f32::from_le_bytes(b.try_into().ok()?))),
        ("i8", 8) => Value::Int(i64::from_le_bytes(b.try_into().ok()?)),
        ("i4", 4) => Value::Int(i64::from(i32::from_le_bytes(b.try_into().ok()?))),
        ("b1", 1) => Value::Bool(b[0] != 0),
        _ => return None,
    };
    Some(v)
}

/// Maps a legacy torch storage class name (`HalfStorage`, …) to its element type.
pub fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_pid(_: Value) -> Result<Value, String> {
        Err("no persistent ids expected".into())
    }

    #[test]
    fn dict_with_memo_sharing_sees_later_mutation() {
        // {'a': [], 'b': <same list>} then append 1 to the list via memo
        // PROTO 2, EMPTY_DICT, MARK, 'a', EMPTY_LIST, BINPUT 1, 'b', BINGET 1, SETITEMS,
        // then BINGET 1, BININT1 7, APPEND, POP, STOP
        let data: Vec<u8> = vec![
            0x80, 2, b'}', b'(', 0x8c, 1, b'a', b']', b'q', 1, 0x8c, 1, b'b', b'h', 1, b'u', b'h',
            1, b'K', 7, b'a', b'0', b'.',
        ];
        let v = unpickle(&data, no_pid).unwrap();
        let a = v.get("a").unwrap().seq_items().unwrap();
        let b = v.get("b").unwrap().seq_items().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(b[0].as_int(), Some(7));
    }

    #[test]
    fn numbers_and_strings() {
        // tuple of (-1, 300, 2**40 via LONG1, 1.5, True, None, 'héllo')
        let mut data = vec![0x80, 2, b'(', b'J'];
        data.extend((-1i32).to_le_bytes());
        data.push(b'M');
        data.extend(300u16.to_le_bytes());
        data.extend([0x8a, 6]);
        data.extend(&(1i64 << 40).to_le_bytes()[..6]);
        data.push(b'G');
        data.extend(1.5f64.to_be_bytes());
        data.extend([0x88, b'N', b'X']);
        let s = "héllo".as_bytes();
        data.extend((s.len() as u32).to_le_bytes());
        data.extend(s);
        data.extend([b't', b'.']);
        let v = unpickle(&data, no_pid).unwrap();
        let items = v.seq_items().unwrap();
        assert_eq!(items[0].as_int(), Some(-1));
        assert_eq!(items[1].as_int(), Some(300));
        assert_eq!(items[2].as_int(), Some(1 << 40));
        assert_eq!(items[3].as_f64(), Some(1.5));
        assert!(matches!(items[4], Value::Bool(true)));
        assert!(matches!(items[5], Value::None));
        assert_eq!(items[6].as_str(), Some("héllo"));
    }

    #[test]
    fn unknown_class_becomes_generic_object_with_state() {
        // GLOBAL 'my.mod Thing', EMPTY_TUPLE, NEWOBJ, EMPTY_DICT, 'x', K 3, SETITEM, BUILD, STOP
        let mut data = vec![0x80, 2, b'c'];
        data.extend(b"my.mod\nThing\n");
        data.extend([b')', 0x81, b'}', 0x8c, 1, b'x', b'K', 3, b's', b'b', b'.']);
        let v = unpickle(&data, no_pid).unwrap();
        assert_eq!(v.class_name().as_deref(), Some("my.mod.Thing"));
        assert_eq!(v.get("x").and_then(|x| x.as_int()), Some(3));
    }

    #[test]
    fn protocol4_stack_global_and_memoize() {
        // PROTO 4, FRAME, SHORT_BINUNICODE 'collections', MEMOIZE, SHORT_BINUNICODE 'OrderedDict',
        // MEMOIZE, STACK_GLOBAL, MEMOIZE, EMPTY_TUPLE, REDUCE, MEMOIZE, 'k', K 1, SETITEM, STOP
        let mut data = vec![0x80, 4, 0x95];
        data.extend(0u64.to_le_bytes());
        data.extend([0x8c, 11]);
        data.extend(b"collections");
        data.push(0x94);
        data.extend([0x8c, 11]);
        data.extend(b"OrderedDict");
        data.extend([
            0x94, 0x93, 0x94, b')', b'R', 0x94, 0x8c, 1, b'k', b'K', 1, b's', b'.',
        ]);
        let v = unpickle(&data, no_pid).unwrap();
        assert_eq!(v.get("k").and_then(|x| x.as_int()), Some(1));
    }

    #[test]
    fn errors_instead_of_panics() {
        for data in [
            &b""[..],
            &[0x80, 2][..],
            &[b'.'][..],
            &[b'a', b'.'][..],
            &[b'h', 9, b'.'][..],
            &[b'X', 0xff, 0xff, 0xff, 0x7f][..],
            &[0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[b'(', b'u', b'.'][..],
            &[b'}', b'K', 1, b'u', b'.'][..],
            &[0xfe][..],
            &[b'N', b'N', b'R', b'.'][..],
        ] {
            assert!(unpickle(data, no_pid).is_err(), "{data:?}");
        }
    }
}
