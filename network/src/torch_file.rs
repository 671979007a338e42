//! `torch.save` archives (`.pth`, the zip layout of torch ≥ 1.6) read without Python and without
//! executing the pickle inside: `<name>/data.pkl` goes through
//! [`autoseg_planner::pickle`], tensors come back as references to their storages, and each
//! storage (`<name>/data/<key>`) is read only when a tensor of it is asked for, with its size
//! checked against what the pickle and the archive declare before anything is allocated.
//!
//! [`save_torch_archive`] writes the same layout back (the records `torch.save` 2.x writes,
//! each 64-byte aligned and stored), so `torch.load` reads autoseg's files.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use autoseg_planner::pickle::{to_pickle, unpickle, Policy, StorageRef, TensorRef, Value};
use autoseg_planner::write_atomic_with;
use tch::{Kind, Tensor};
use zip::write::FileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::NetworkError;

/// The largest expansion a deflate stream can achieve (1032:1); bounds how much a compressed
/// archive entry can hold.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// An opened `torch.save` archive: the unpickled object and access to its storages.
pub struct TorchArchive {
    path: PathBuf,
    zip: ZipArchive<BufReader<File>>,
    prefix: String,
    object: Value,
    storages: HashMap<String, Tensor>,
}

impl TorchArchive {
    /// Opens `path` and reads its pickle under `policy` (nothing in it is run).
    ///
    /// # Errors
    /// [`NetworkError::Io`] when the file cannot be read; [`NetworkError::TorchFile`] when it is
    /// not a torch zip archive (legacy pre-1.6 files included) or is big-endian;
    /// [`NetworkError::Pickle`] when the pickle names a forbidden global or is malformed.
    pub fn open(path: &Path, policy: &Policy) -> Result<TorchArchive, NetworkError> {
        let file = File::open(path).map_err(|source| NetworkError::Io {
            path: path.to_path_buf(),
            action: "open",
            source,
        })?;
        let fault = |what: String| NetworkError::TorchFile {
            path: path.to_path_buf(),
            what,
        };
        let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| {
            fault(format!(
                "not a torch zip archive ({e}); files saved by torch before 1.6 are not supported"
            ))
        })?;
        let pickle_name = zip
            .file_names()
            .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .map(str::to_string)
            .ok_or_else(|| fault("no <name>/data.pkl in the archive".into()))?;
        let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
        let byteorder = format!("{prefix}byteorder");
        if zip.file_names().any(|n| n == byteorder) {
            let order = read_entry(&mut zip, &byteorder, 16).map_err(fault)?;
            if order != b"little" {
                return Err(fault(format!(
                    "byte order {:?}; only little-endian archives are read",
                    String::from_utf8_lossy(&order)
                )));
            }
        }
        let bytes = read_entry(&mut zip, &pickle_name, 1 << 30).map_err(fault)?;
        let object = unpickle(&bytes, policy).map_err(|source| NetworkError::Pickle {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(TorchArchive {
            path: path.to_path_buf(),
            zip,
            prefix,
            object,
            storages: HashMap::new(),
        })
    }

    /// The unpickled object (for a checkpoint, its dict).
    pub fn object(&self) -> &Value {
        &self.object
    }

    /// The tensor `reference` describes, on the CPU, contiguous, in its stored dtype.
    ///
    /// # Errors
    /// [`NetworkError::TorchFile`] when its storage is missing, of another size than declared,
    /// of an unknown type, or the view reaches past it; [`NetworkError::Torch`] from libtorch.
    pub fn tensor(&mut self, reference: &TensorRef) -> Result<Tensor, NetworkError> {
        let fault = |what: String| NetworkError::TorchFile {
            path: self.path.clone(),
            what,
        };
        let storage = &reference.storage;
        let numel = storage.numel;
        let extent = reference
            .size
            .iter()
            .zip(&reference.stride)
            .try_fold(reference.offset, |acc, (&size, &stride)| {
                acc.checked_add(size.saturating_sub(1).checked_mul(stride)?)
            });
        let empty = reference.size.contains(&0);
        if reference.size.len() != reference.stride.len()
            || (!empty && extent.is_none_or(|last| last >= numel))
        {
            return Err(fault(format!(
                "a tensor of size {:?}, stride {:?} and offset {} reaches past its storage '{}' of {numel} elements",
                reference.size, reference.stride, reference.offset, storage.key
            )));
        }
        let flat = self.storage(storage)?;
        let dims = |v: &[u64]| -> Vec<i64> { v.iter().map(|&d| d as i64).collect() };
        let view = flat.f_as_strided(
            dims(&reference.size).as_slice(),
            dims(&reference.stride).as_slice(),
            Some(reference.offset as i64),
        )?;
        Ok(view.f_contiguous()?)
    }

    fn storage(&mut self, storage: &StorageRef) -> Result<Tensor, NetworkError> {
        if let Some(t) = self.storages.get(&storage.key) {
            return Ok(t.shallow_clone());
        }
        let fault = |what: String| NetworkError::TorchFile {
            path: self.path.clone(),
            what,
        };
        let (kind, elem) = storage_kind(&storage.class)
            .ok_or_else(|| fault(format!("storage class {} is not supported", storage.class)))?;
        let bytes = storage
            .numel
            .checked_mul(elem)
            .ok_or_else(|| fault(format!("storage '{}' is impossibly large", storage.key)))?;
        let name = format!("{}data/{}", self.prefix, storage.key);
        let data = read_entry(&mut self.zip, &name, bytes).map_err(fault)?;
        if data.len() as u64 != bytes {
            return Err(fault(format!(
                "storage '{}' holds {} bytes; {} {} elements need {bytes}",
                storage.key,
                data.len(),
                storage.numel,
                storage.class
            )));
        }
        let flat = Tensor::f_from_data_size(&data, &[storage.numel as i64], kind)?;
        self.storages
            .insert(storage.key.clone(), flat.shallow_clone());
        Ok(flat)
    }
}

/// Writes `object` as a `torch.save` archive at `path`, atomically: its pickle as
/// `<stem>/data.pkl` and each of `storages` (key, tensor) as `<stem>/data/<key>`, where `<stem>`
/// is the file name without its extension (as `torch.save` names the archive's folder). The
/// tensors of `object` must name these keys with the storage class of their kind.
///
/// # Errors
/// [`NetworkError::Pickle`] for a value the pickle writer does not write;
/// [`NetworkError::TorchFile`] for a storage of a kind torch storages do not hold;
/// [`NetworkError::Torch`] when a tensor cannot be read; [`NetworkError::Io`] when the file
/// cannot be written.
pub fn save_torch_archive(
    path: &Path,
    object: &Value,
    storages: &[(String, Tensor)],
) -> Result<(), NetworkError> {
    let pickle = to_pickle(object).map_err(|source| NetworkError::Pickle {
        path: path.to_path_buf(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map_or("archive".into(), |s| s.to_string_lossy().into_owned());
    let mut records: Vec<(String, Vec<u8>)> = vec![
        (format!("{stem}/data.pkl"), pickle),
        (format!("{stem}/.format_version"), b"1".to_vec()),
        (format!("{stem}/.storage_alignment"), b"64".to_vec()),
        (format!("{stem}/byteorder"), b"little".to_vec()),
    ];
    for (key, tensor) in storages {
        if storage_class(tensor.kind()).is_none() {
            return Err(NetworkError::TorchFile {
                path: path.to_path_buf(),
                what: format!(
                    "storage '{key}' is of kind {:?}, which torch storages do not hold",
                    tensor.kind()
                ),
            });
        }
        records.push((format!("{stem}/data/{key}"), storage_bytes(tensor)?));
    }
    records.push((format!("{stem}/version"), b"3\n".to_vec()));
    write_atomic_with(path, |file| {
        let mut zip = ZipWriter::new(BufWriter::new(file));
        for (name, bytes) in &records {
            let options = FileOptions::default()
                .compression_method(CompressionMethod::Stored)
                .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
            zip.start_file_aligned(name.as_str(), options, 64)
                .map_err(std::io::Error::other)?;
            zip.write_all(bytes)?;
        }
        zip.finish()?.flush()
    })
    .map_err(|source| NetworkError::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

/// The torch storage class holding tensors of `kind` (what [`save_torch_archive`] names).
pub fn storage_class(kind: Kind) -> Option<&'static str> {
    STORAGE_KINDS
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map(|(class, _, _)| *class)
}

/// A tensor's elements as little-endian bytes, in row-major order.
fn storage_bytes(tensor: &Tensor) -> Result<Vec<u8>, NetworkError> {
    let flat = tensor
        .f_to_device(tch::Device::Cpu)?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    let bytes = flat.f_view_dtype(Kind::Uint8)?;
    Ok(Vec::<u8>::try_from(&bytes)?)
}

const STORAGE_KINDS: [(&str, Kind, u64); 10] = [
    ("FloatStorage", Kind::Float, 4),
    ("DoubleStorage", Kind::Double, 8),
    ("HalfStorage", Kind::Half, 2),
    ("BFloat16Storage", Kind::BFloat16, 2),
    ("LongStorage", Kind::Int64, 8),
    ("IntStorage", Kind::Int, 4),
    ("ShortStorage", Kind::Int16, 2),
    ("CharStorage", Kind::Int8, 1),
    ("ByteStorage", Kind::Uint8, 1),
    ("BoolStorage", Kind::Bool, 1),
];

/// libtorch's kind and the element size of a torch storage class.
fn storage_kind(class: &str) -> Option<(Kind, u64)> {
    STORAGE_KINDS
        .iter()
        .find(|(c, _, _)| *c == class)
        .map(|(_, kind, size)| (*kind, *size))
}

/// The whole entry `name`, refused when it declares more than `limit` bytes or more than its
/// compressed size can hold, so nothing is allocated on a forged size.
fn read_entry(
    zip: &mut ZipArchive<BufReader<File>>,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let entry = zip
        .by_name(name)
        .map_err(|e| format!("archive entry {name}: {e}"))?;
    let size = entry.size();
    let most = entry
        .compressed_size()
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1024);
    if size > limit || size > most {
        return Err(format!(
            "archive entry {name} declares {size} bytes, more than it can hold or than expected ({limit})"
        ));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(size as usize)
        .map_err(|_| format!("archive entry {name}: cannot reserve {size} bytes"))?;
    entry
        .take(size)
        .read_to_end(&mut data)
        .map_err(|e| format!("archive entry {name}: {e}"))?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/data/nnunet")
            .join(name)
    }

    fn values(t: &Tensor) -> Vec<f64> {
        let flat = t.to_kind(Kind::Double).flatten(0, -1);
        Vec::<f64>::try_from(&flat).unwrap()
    }

    #[test]
    fn a_torch_checkpoint_gives_back_its_tensors() {
        let mut archive =
            TorchArchive::open(&fixture("tiny_checkpoint.pth"), &Policy::default()).unwrap();
        let Some(Value::Dict(weights)) = archive.object().get("network_weights").cloned() else {
            panic!("no network_weights");
        };
        let mut read = |i: usize| match &weights[i].1 {
            Value::Tensor(t) => archive.tensor(t).unwrap(),
            other => panic!("{}", other.kind()),
        };
        let w = read(0);
        assert_eq!((w.size(), w.kind()), (vec![2, 1, 3, 4], Kind::Float));
        let expected: Vec<f64> = (0..24).map(|i| f64::from(i) / 8.0).collect();
        assert_eq!(values(&w), expected);
        assert_eq!(values(&read(1)), [-1.5, 2.25]);
        assert_eq!(values(&read(2)), [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]);
        let count = read(3);
        assert_eq!((count.size(), count.kind()), (vec![], Kind::Int64));
        assert_eq!(count.int64_value(&[]), 7);
        let half = read(4);
        assert_eq!((half.kind(), values(&half)), (Kind::Half, vec![0.5, -3.0]));
        // base[4:16].view(3, 4)[:, 1:3]
        let view = read(5);
        assert_eq!(view.size(), [3, 2]);
        assert_eq!(values(&view), [5.0, 6.0, 9.0, 10.0, 13.0, 14.0]);
    }

    #[test]
    fn a_checkpoint_that_would_run_a_shell_command_is_refused() {
        let err = TorchArchive::open(&fixture("malicious_shell.pth"), &Policy::default())
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("posix.system")
                && err.to_string().contains("malicious_shell.pth"),
            "{err}"
        );
        assert!(!Path::new("/tmp/autoseg-pickle-was-run").exists());
    }

    #[test]
    fn views_past_their_storage_and_wrong_sizes_are_refused() {
        let mut archive =
            TorchArchive::open(&fixture("tiny_checkpoint.pth"), &Policy::default()).unwrap();
        let Some(Value::Dict(weights)) = archive.object().get("network_weights").cloned() else {
            panic!("no network_weights");
        };
        let Value::Tensor(good) = &weights[1].1 else {
            panic!("not a tensor")
        };
        let mut past = good.clone();
        past.offset = 1;
        let err = archive.tensor(&past).unwrap_err().to_string();
        assert!(err.contains("reaches past its storage"), "{err}");
        let mut bigger = good.clone();
        bigger.storage.numel = 1 << 40;
        bigger.storage.key = "1".into();
        let mut fresh =
            TorchArchive::open(&fixture("tiny_checkpoint.pth"), &Policy::default()).unwrap();
        let err = fresh.tensor(&bigger).unwrap_err().to_string();
        assert!(
            err.contains("declares 8 bytes") || err.contains("holds"),
            "{err}"
        );
    }

    #[test]
    fn a_written_archive_reads_back_with_its_tensors_and_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint_final.pth");
        let weight = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).reshape([2, 3, 4]) / 8.0;
        let half = Tensor::from_slice(&[0.5f32, -3.0]).to_kind(Kind::Half);
        let count = Tensor::from(7i64);
        let mut entries = Vec::new();
        let mut storages = Vec::new();
        for (key, t) in [&weight, &half, &count].into_iter().enumerate() {
            let size: Vec<u64> = t.size().iter().map(|&d| d as u64).collect();
            let storage = StorageRef {
                class: storage_class(t.kind()).unwrap().into(),
                key: key.to_string(),
                location: "cpu".into(),
                numel: t.numel() as u64,
            };
            let reference = Value::Tensor(TensorRef::contiguous(storage, size));
            entries.push((Value::Str(format!("t{key}")), reference.clone()));
            entries.push((Value::Str(format!("alias{key}")), reference));
            storages.push((key.to_string(), t.shallow_clone()));
        }
        let object = Value::Dict(vec![(Value::Str("w".into()), Value::Dict(entries))]);
        save_torch_archive(&path, &object, &storages).unwrap();
        let mut archive = TorchArchive::open(&path, &Policy::default()).unwrap();
        assert_eq!(archive.object(), &object);
        let Some(Value::Dict(read)) = archive.object().get("w").cloned() else {
            panic!("no dict")
        };
        for (i, expected) in [&weight, &weight, &half, &half, &count, &count]
            .into_iter()
            .enumerate()
        {
            let Value::Tensor(t) = &read[i].1 else {
                panic!("not a tensor")
            };
            let got = archive.tensor(t).unwrap();
            assert_eq!((got.size(), got.kind()), (expected.size(), expected.kind()));
            assert_eq!(values(&got), values(expected));
        }
        // torch.save's records, every one aligned to 64 bytes and stored.
        let mut zip = ZipArchive::new(File::open(&path).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(str::to_string).collect();
        for name in [
            "data.pkl",
            "byteorder",
            "version",
            ".format_version",
            "data/0",
            "data/2",
        ] {
            assert!(
                names.contains(&format!("checkpoint_final/{name}")),
                "{names:?}"
            );
        }
        for i in 0..zip.len() {
            let entry = zip.by_index(i).unwrap();
            assert_eq!(entry.compression(), CompressionMethod::Stored);
            assert_eq!(entry.data_start() % 64, 0, "{}", entry.name());
        }
    }
}
