//! The inverse of the reader for the values a torch checkpoint holds: Python's plain data,
//! torch tensors by reference to their storages (`torch._utils._rebuild_tensor_v2` over a
//! persistent id, as `torch.save` writes them) and globals named as values. Protocol 2, the one
//! `torch.save` uses; no memo (the same storage is named by its key each time, and torch's
//! loader returns one storage per key, so aliases stay aliases).

use super::value::{StorageRef, TensorRef, Value};
use super::PickleError;

/// Pickles `value` (protocol 2).
///
/// # Errors
/// [`PickleError::Unwritable`] for what this writer does not produce (`bytes`, sets, numpy
/// values) or a string longer than 4 GiB.
///
/// ```
/// use autoseg_planner::pickle::{to_pickle, unpickle, Policy, Value};
/// let value = Value::Dict(vec![(Value::Str("a".into()), Value::List(vec![Value::Int(1), Value::Float(2.5)]))]);
/// let bytes = to_pickle(&value)?;
/// assert_eq!(unpickle(&bytes, &Policy::default())?, value);
/// # Ok::<(), autoseg_planner::pickle::PickleError>(())
/// ```
pub fn to_pickle(value: &Value) -> Result<Vec<u8>, PickleError> {
    let mut out = vec![0x80, 2];
    write(&mut out, value)?;
    out.push(b'.');
    Ok(out)
}

const MARK: u8 = b'(';
const TUPLE: u8 = b't';
const REDUCE: u8 = b'R';

fn write(out: &mut Vec<u8>, value: &Value) -> Result<(), PickleError> {
    match value {
        Value::None => out.push(b'N'),
        Value::Bool(true) => out.push(0x88),
        Value::Bool(false) => out.push(0x89),
        Value::Int(i) => int(out, *i),
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => string(out, s)?,
        Value::List(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(MARK);
                for item in items {
                    write(out, item)?;
                }
                out.push(b'e');
            }
        }
        Value::Tuple(items) => tuple(out, items)?,
        Value::Dict(entries) => {
            out.push(b'}');
            if !entries.is_empty() {
                out.push(MARK);
                for (key, value) in entries {
                    write(out, key)?;
                    write(out, value)?;
                }
                out.push(b'u');
            }
        }
        Value::Global { module, name } => global(out, module, name),
        Value::Storage(storage) => persistent_id(out, storage)?,
        Value::Tensor(tensor) => rebuild_tensor(out, tensor)?,
        Value::Bytes(_) | Value::Set(_) | Value::Dtype(_) | Value::NdArray { .. } => {
            return Err(PickleError::Unwritable { kind: value.kind() })
        }
    }
    Ok(())
}

fn int(out: &mut Vec<u8>, i: i64) {
    if let Ok(b) = u8::try_from(i) {
        out.extend_from_slice(&[b'K', b]);
    } else if let Ok(h) = u16::try_from(i) {
        out.push(b'M');
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(i) {
        out.push(b'J');
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        // LONG1: little-endian two's complement, 8 bytes always suffice.
        out.extend_from_slice(&[0x8a, 8]);
        out.extend_from_slice(&i.to_le_bytes());
    }
}

fn string(out: &mut Vec<u8>, s: &str) -> Result<(), PickleError> {
    let len = u32::try_from(s.len()).map_err(|_| PickleError::Unwritable {
        kind: "str of 4 GiB or more",
    })?;
    out.push(b'X');
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn tuple(out: &mut Vec<u8>, items: &[Value]) -> Result<(), PickleError> {
    if items.is_empty() {
        out.push(b')');
        return Ok(());
    }
    if items.len() > 3 {
        out.push(MARK);
    }
    for item in items {
        write(out, item)?;
    }
    out.push(match items.len() {
        1 => 0x85,
        2 => 0x86,
        3 => 0x87,
        _ => TUPLE,
    });
    Ok(())
}

fn global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    for part in [module, name] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
}

/// `('storage', torch.<Class>, key, location, numel)` as a persistent id (`BINPERSID`).
fn persistent_id(out: &mut Vec<u8>, storage: &StorageRef) -> Result<(), PickleError> {
    let numel = i64::try_from(storage.numel).map_err(|_| PickleError::Unwritable {
        kind: "storage of 2^63 elements or more",
    })?;
    out.push(MARK);
    string(out, "storage")?;
    global(out, "torch", &storage.class);
    string(out, &storage.key)?;
    string(out, &storage.location)?;
    int(out, numel);
    out.push(TUPLE);
    out.push(b'Q');
    Ok(())
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
fn rebuild_tensor(out: &mut Vec<u8>, tensor: &TensorRef) -> Result<(), PickleError> {
    let dims = |v: &[u64]| -> Result<Vec<Value>, PickleError> {
        v.iter()
            .map(|&d| {
                i64::try_from(d)
                    .map(Value::Int)
                    .map_err(|_| PickleError::Unwritable {
                        kind: "tensor dimension of 2^63 or more",
                    })
            })
            .collect()
    };
    global(out, "torch._utils", "_rebuild_tensor_v2");
    out.push(MARK);
    persistent_id(out, &tensor.storage)?;
    int(
        out,
        i64::try_from(tensor.offset).map_err(|_| PickleError::Unwritable {
            kind: "storage offset of 2^63 or more",
        })?,
    );
    tuple(out, &dims(&tensor.size)?)?;
    tuple(out, &dims(&tensor.stride)?)?;
    out.push(0x89);
    global(out, "collections", "OrderedDict");
    out.push(b')');
    out.push(REDUCE);
    out.push(TUPLE);
    out.push(REDUCE);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{unpickle, Policy};

    fn round_trip(value: Value) {
        let bytes = to_pickle(&value).unwrap();
        assert_eq!(unpickle(&bytes, &Policy::default()).unwrap(), value);
    }

    #[test]
    fn plain_values_read_back_equal() {
        for i in [
            0,
            1,
            255,
            256,
            65535,
            65536,
            -1,
            -300,
            i64::from(i32::MAX) + 1,
            i64::MIN,
        ] {
            round_trip(Value::Int(i));
        }
        round_trip(Value::Float(1e-5));
        round_trip(Value::Str("décembre ✓".into()));
        round_trip(Value::Tuple(vec![]));
        for n in 1..6 {
            round_trip(Value::Tuple((0..n).map(Value::Int).collect()));
        }
        round_trip(Value::List(vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
        ]));
        round_trip(Value::Dict(vec![
            (Value::Str("b".into()), Value::List(vec![])),
            (Value::Str("a".into()), Value::Dict(vec![])),
        ]));
        round_trip(Value::Global {
            module: "torch".into(),
            name: "float32".into(),
        });
    }

    #[test]
    fn tensors_read_back_as_views_of_their_storage() {
        let storage = StorageRef {
            class: "FloatStorage".into(),
            key: "3".into(),
            location: "cpu".into(),
            numel: 24,
        };
        let tensor = Value::Tensor(TensorRef {
            storage,
            offset: 4,
            size: vec![2, 3, 2],
            stride: vec![6, 2, 1],
        });
        round_trip(Value::Dict(vec![
            (Value::Str("w".into()), tensor.clone()),
            (Value::Str("alias".into()), tensor),
        ]));
    }

    /// `pickle.dumps({"a": (1, 2.5), "b": None}, protocol=2)` minus the memo (`q` opcodes),
    /// which this writer does not emit.
    #[test]
    fn bytes_match_python_without_the_memo() {
        let value = Value::Dict(vec![
            (
                Value::Str("a".into()),
                Value::Tuple(vec![Value::Int(1), Value::Float(2.5)]),
            ),
            (Value::Str("b".into()), Value::None),
        ]);
        let expected: &[u8] = b"\x80\x02}(X\x01\x00\x00\x00aK\x01G@\x04\x00\x00\x00\x00\x00\x00\x86X\x01\x00\x00\x00bNu.";
        assert_eq!(to_pickle(&value).unwrap(), expected);
    }

    #[test]
    fn what_it_does_not_write_is_refused_by_kind() {
        let err = to_pickle(&Value::Set(vec![])).unwrap_err();
        assert_eq!(err, PickleError::Unwritable { kind: "set" });
    }
}
