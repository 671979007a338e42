//! What a pickle holds once read: Python's plain data, plus the few objects of checkpoints that
//! the reader interprets (tensors by reference to their storage, numpy dtypes and arrays).

/// A value read from a pickle. Dicts keep their insertion order (as Python's do).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits 64 bits (or a numpy integer scalar).
    Int(i64),
    /// A `float` (or a numpy floating scalar).
    Float(f64),
    /// A `str` (Python 2 strings are read as Latin-1).
    Str(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple` (also `torch.Size`).
    Tuple(Vec<Value>),
    /// A `dict` or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A `set` or `frozenset`.
    Set(Vec<Value>),
    /// A global named as a value, never called: a torch dtype or storage class, or a name the
    /// caller's [`super::Policy`] allows.
    Global {
        /// The module.
        module: String,
        /// The attribute.
        name: String,
    },
    /// A torch tensor: where its data lives (`torch._utils._rebuild_tensor_v2`).
    Tensor(TensorRef),
    /// A torch storage reference (a checkpoint's persistent id).
    Storage(StorageRef),
    /// A numpy dtype.
    Dtype(Dtype),
    /// A numpy array.
    NdArray {
        /// Element type.
        dtype: Dtype,
        /// Shape.
        shape: Vec<usize>,
        /// Fortran (column-major) order.
        fortran: bool,
        /// The raw element bytes.
        data: Vec<u8>,
    },
}

impl Value {
    /// The value of `key` in a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// A JSON document as the value Python's `json.load` gives: objects as dicts, integers
    /// as ints, other numbers as floats.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::None,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Dict(
                map.iter()
                    .map(|(k, v)| (Value::Str(k.clone()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// A short name of the kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global { .. } => "global",
            Value::Tensor(_) => "tensor",
            Value::Storage(_) => "storage",
            Value::Dtype(_) => "numpy dtype",
            Value::NdArray { .. } => "numpy array",
        }
    }
}

/// A torch storage named by a checkpoint: its element type (from the storage class, e.g.
/// `FloatStorage`), its key (the file `data/<key>` in the archive) and its length in elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage class name, e.g. `FloatStorage`.
    pub class: String,
    /// The archive entry holding the bytes.
    pub key: String,
    /// Where it was saved from (`cpu`, `cuda:0`).
    pub location: String,
    /// Elements in the storage.
    pub numel: u64,
}

/// A tensor as a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset in elements.
    pub offset: u64,
    /// Shape.
    pub size: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

impl TensorRef {
    /// A tensor of shape `size` laid out row-major from the start of `storage`, as a
    /// contiguous tensor is saved.
    pub fn contiguous(storage: StorageRef, size: Vec<u64>) -> TensorRef {
        let mut stride = vec![1u64; size.len()];
        for axis in (0..size.len().saturating_sub(1)).rev() {
            stride[axis] = stride[axis + 1] * size[axis + 1];
        }
        TensorRef {
            storage,
            offset: 0,
            size,
            stride,
        }
    }
}

/// A numpy dtype: its type string (`f8`, `i4`, `b1`...) and byte order (`<`, `>`, `|`, `=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtype {
    /// The type string as numpy pickles it, e.g. `f8`.
    pub descr: String,
    /// The byte order character from the dtype's state (`<` unless the state says otherwise).
    pub byte_order: char,
}

impl Dtype {
    /// Reads one scalar of this dtype from `bytes`: floats as [`Value::Float`], integers as
    /// [`Value::Int`], `b1` as [`Value::Bool`]; `None` for other types or a wrong length.
    pub fn scalar(&self, bytes: &[u8]) -> Option<Value> {
        let big = self.byte_order == '>';
        let mut b = bytes.to_vec();
        if big {
            b.reverse();
        }
        let value = match (self.descr.as_str(), b.len()) {
            ("f8", 8) => Value::Float(f64::from_le_bytes(b.try_into().ok()?)),
            ("f4", 4) => Value::Float(f64::from(f32::from_le_bytes(b.try_into().ok()?))),
            ("i8", 8) => Value::Int(i64::from_le_bytes(b.try_into().ok()?)),
            ("i4", 4) => Value::Int(i64::from(i32::from_le_bytes(b.try_into().ok()?))),
            ("i2", 2) => Value::Int(i64::from(i16::from_le_bytes(b.try_into().ok()?))),
            ("i1", 1) => Value::Int(i64::from(b[0] as i8)),
            ("u1", 1) => Value::Int(i64::from(b[0])),
            ("u2", 2) => Value::Int(i64::from(u16::from_le_bytes(b.try_into().ok()?))),
            ("u4", 4) => Value::Int(i64::from(u32::from_le_bytes(b.try_into().ok()?))),
            ("u8", 8) => Value::Int(i64::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()?),
            ("b1", 1) => Value::Bool(b[0] != 0),
            _ => return None,
        };
        Some(value)
    }
}
