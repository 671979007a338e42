//! The globals a pickle may name, and what the reader does instead of calling them.
//!
//! Callables interpreted here (the reader builds the result itself): `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and `_rebuild_parameter`, `torch.Size`, `torch.device`,
//! `_codecs.encode` (how protocol 2 pickles bytes), numpy's `dtype`, `scalar` and `_reconstruct`,
//! `builtins.set`/`frozenset`. Inert values: torch storage classes and dtypes, `numpy.ndarray`.

use super::value::{Dtype, StorageRef, TensorRef, Value};
use super::Policy;

/// A callable the reader interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    TorchSize,
    TorchDevice,
    CodecsEncode,
    NumpyScalar,
    NumpyDtype,
    NumpyReconstruct,
    Set,
}

const NUMPY_MULTIARRAY: [&str; 2] = ["numpy.core.multiarray", "numpy._core.multiarray"];

const STORAGE_CLASSES: [&str; 10] = [
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
];

const TORCH_DTYPES: [&str; 10] = [
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
];

/// The interpreted callable `module.name`, if any.
pub(crate) fn builtin(module: &str, name: &str) -> Option<Builtin> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Builtin::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Builtin::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Builtin::RebuildParameter,
        ("torch", "Size") => Builtin::TorchSize,
        ("torch", "device") => Builtin::TorchDevice,
        ("_codecs", "encode") => Builtin::CodecsEncode,
        ("numpy", "dtype") => Builtin::NumpyDtype,
        ("builtins", "set" | "frozenset") => Builtin::Set,
        (m, "scalar") if NUMPY_MULTIARRAY.contains(&m) => Builtin::NumpyScalar,
        (m, "_reconstruct") if NUMPY_MULTIARRAY.contains(&m) => Builtin::NumpyReconstruct,
        _ => return None,
    })
}

/// Whether `module.name` may appear in the pickle at all (called or as a value).
pub(crate) fn allowed(module: &str, name: &str, policy: &Policy) -> bool {
    builtin(module, name).is_some()
        || (module == "torch" && (STORAGE_CLASSES.contains(&name) || TORCH_DTYPES.contains(&name)))
        || (module == "numpy" && name == "ndarray")
        || policy.value_globals.contains(&(module, name))
}

/// The value `callable(*args)` would produce, built without calling anything.
pub(crate) fn call(callable: Builtin, args: Vec<Value>) -> Result<Value, String> {
    let wrong = || format!("{callable:?} called with unexpected arguments");
    Ok(match (callable, args.as_slice()) {
        (Builtin::OrderedDict, []) => Value::Dict(Vec::new()),
        (Builtin::OrderedDict, [Value::List(pairs)]) => {
            Value::Dict(pairs_of(pairs).ok_or_else(wrong)?)
        }
        (Builtin::RebuildTensor, [Value::Storage(storage), offset, size, stride, ..]) => {
            Value::Tensor(tensor(storage, offset, size, stride).ok_or_else(wrong)?)
        }
        (Builtin::RebuildParameter, [tensor @ Value::Tensor(_), ..]) => tensor.clone(),
        (Builtin::TorchSize, [Value::Tuple(items)]) => Value::Tuple(items.clone()),
        (Builtin::TorchDevice, [Value::Str(kind), rest @ ..]) => match rest {
            [] => Value::Str(kind.clone()),
            [Value::Int(index)] => Value::Str(format!("{kind}:{index}")),
            _ => return Err(wrong()),
        },
        (Builtin::CodecsEncode, [Value::Str(text), Value::Str(codec)])
            if codec == "latin1" || codec == "latin-1" =>
        {
            let bytes: Option<Vec<u8>> = text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect();
            Value::Bytes(bytes.ok_or_else(wrong)?)
        }
        (Builtin::NumpyDtype, [Value::Str(descr), ..]) => Value::Dtype(Dtype {
            descr: descr.clone(),
            byte_order: '<',
        }),
        (Builtin::NumpyScalar, [Value::Dtype(dtype), Value::Bytes(bytes)]) => {
            dtype.scalar(bytes).ok_or_else(wrong)?
        }
        (Builtin::NumpyReconstruct, [Value::Global { module, name }, ..])
            if module == "numpy" && name == "ndarray" =>
        {
            Value::NdArray {
                dtype: Dtype {
                    descr: String::new(),
                    byte_order: '<',
                },
                shape: Vec::new(),
                fortran: false,
                data: Vec::new(),
            }
        }
        (Builtin::Set, [Value::List(items)]) => Value::Set(items.clone()),
        (Builtin::Set, []) => Value::Set(Vec::new()),
        _ => return Err(wrong()),
    })
}

/// `BUILD`: sets the state of an object made by a call (numpy dtypes and arrays). A dict's
/// state is its attributes (a state dict's `_metadata`), not items: they are dropped.
pub(crate) fn build(target: Value, state: Value) -> Result<Value, String> {
    match (target, state) {
        // numpy dtype state: (version, byte order, subarray, names, fields, elsize, align, flags)
        (Value::Dtype(mut dtype), Value::Tuple(items)) => {
            if let Some(Value::Str(order)) = items.get(1) {
                dtype.byte_order = order.chars().next().unwrap_or('<');
            }
            Ok(Value::Dtype(dtype))
        }
        // numpy array state: (version, shape, dtype, is_fortran, raw bytes)
        (Value::NdArray { .. }, Value::Tuple(items)) => match items.as_slice() {
            [_, Value::Tuple(shape), Value::Dtype(dtype), Value::Bool(fortran), Value::Bytes(data)] =>
            {
                let shape: Option<Vec<usize>> = shape
                    .iter()
                    .map(|d| d.as_int().and_then(|d| usize::try_from(d).ok()))
                    .collect();
                Ok(Value::NdArray {
                    dtype: dtype.clone(),
                    shape: shape.ok_or("numpy array shape is not a tuple of sizes")?,
                    fortran: *fortran,
                    data: data.clone(),
                })
            }
            _ => {
                Err("numpy array state of an unsupported layout (object arrays are refused)".into())
            }
        },
        (Value::Dict(entries), Value::Dict(_attributes)) => Ok(Value::Dict(entries)),
        (target, state) => Err(format!(
            "cannot set the state of a {} from a {}",
            target.kind(),
            state.kind()
        )),
    }
}

/// A checkpoint's persistent id `('storage', torch.<Class>, key, location, numel)`.
pub(crate) fn storage(pid: Value) -> Result<Value, String> {
    match pid {
        Value::Tuple(items) => match items.as_slice() {
            [Value::Str(tag), Value::Global { module, name }, Value::Str(key), Value::Str(location), Value::Int(numel)]
                if tag == "storage"
                    && module == "torch"
                    && STORAGE_CLASSES.contains(&name.as_str()) =>
            {
                Ok(Value::Storage(StorageRef {
                    class: name.clone(),
                    key: key.clone(),
                    location: location.clone(),
                    numel: u64::try_from(*numel).map_err(|_| "negative storage size")?,
                }))
            }
            _ => Err("a persistent id that is not a torch storage".into()),
        },
        other => Err(format!("a persistent id of kind {}", other.kind())),
    }
}

fn pairs_of(items: &[Value]) -> Option<Vec<(Value, Value)>> {
    items
        .iter()
        .map(|item| match item.as_seq() {
            Some([k, v]) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

fn tensor(storage: &StorageRef, offset: &Value, size: &Value, stride: &Value) -> Option<TensorRef> {
    let dims = |v: &Value| -> Option<Vec<u64>> {
        v.as_seq()?
            .iter()
            .map(|d| d.as_int().and_then(|d| u64::try_from(d).ok()))
            .collect()
    };
    Some(TensorRef {
        storage: storage.clone(),
        offset: u64::try_from(offset.as_int()?).ok()?,
        size: dims(size)?,
        stride: dims(stride)?,
    })
}
