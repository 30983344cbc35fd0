//! The PyTorch zip container (`torch.save` since 1.6): `<top>/data.pkl`, `<top>/data/<key>`
//! storages, `<top>/byteorder`, `<top>/version`. The top folder name varies with the file name
//! the checkpoint was saved under.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::rc::Rc;

use crate::error::ErrorKind;
use crate::pickle::{self, Value};
use crate::tensor::{StorageRef, TensorF32, TensorRef};

/// An opened torch zip archive: the decoded root object plus access to its storages.
pub(crate) struct TorchArchive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    prefix: String,
    big_endian: bool,
    cache: HashMap<String, Rc<Vec<u8>>>,
    /// The object `torch.save` pickled.
    pub root: Value,
}

fn zip_err(e: zip::result::ZipError) -> ErrorKind {
    ErrorKind::Zip(e)
}

impl<'a> TorchArchive<'a> {
    /// Opens the archive and decodes `data.pkl`.
    pub fn open(bytes: &'a [u8]) -> Result<Self, ErrorKind> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
        let pkl_name = zip
            .file_names()
            .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .min_by_key(|n| n.len())
            .map(str::to_string)
            .ok_or_else(|| ErrorKind::MissingRecord("data.pkl".into()))?;
        let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_string();
        let big_endian = match read_record(&mut zip, &format!("{prefix}byteorder")) {
            Ok(b) => {
                let s = String::from_utf8_lossy(&b);
                match s.trim() {
                    "little" => false,
                    "big" => true,
                    other => {
                        return Err(ErrorKind::ByteOrder(other.to_string()));
                    }
                }
            }
            // archives written before the byteorder record existed are little-endian
            Err(ErrorKind::MissingRecord(_)) => false,
            Err(e) => return Err(e),
        };
        let pkl = read_record(&mut zip, &pkl_name)?;
        let root = pickle::unpickle(&pkl, persistent_load).map_err(|source| ErrorKind::Pickle {
            record: pkl_name.clone(),
            source,
        })?;
        Ok(Self {
            zip,
            prefix,
            big_endian,
            cache: HashMap::new(),
            root,
        })
    }

    /// Rebuilds one tensor from its storage record.
    pub fn materialize(&mut self, name: &str, t: &TensorRef) -> Result<TensorF32, ErrorKind> {
        let key = &t.storage.key;
        let bytes = match self.cache.get(key) {
            Some(b) => b.clone(),
            None => {
                let record = format!("{}data/{key}", self.prefix);
                let b = Rc::new(read_record(&mut self.zip, &record)?);
                let expected = t.storage.numel.saturating_mul(t.storage.dtype.size());
                if b.len() < expected {
                    return Err(ErrorKind::Tensor {
                        name: name.to_string(),
                        message: format!(
                            "storage record {record} holds {} bytes, the pickle says {expected}",
                            b.len()
                        ),
                    });
                }
                self.cache.insert(key.clone(), b.clone());
                b
            }
        };
        t.materialize(&bytes, self.big_endian)
            .map_err(|message| ErrorKind::Tensor {
                name: name.to_string(),
                message,
            })
    }
}

fn read_record(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str) -> Result<Vec<u8>, ErrorKind> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ErrorKind::MissingRecord(name.to_string()));
        }
        Err(e) => return Err(zip_err(e)),
    };
    // never trust the declared size for the allocation beyond the archive's own size
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|e| ErrorKind::ZipRecord {
        record: name.to_string(),
        source: e,
    })?;
    Ok(out)
}

/// Torch persistent ids: `('storage', storage_type, key, location, numel)`.
fn persistent_load(pid: Value) -> Result<Value, String> {
    let items = pid
        .seq_items()
        .ok_or_else(|| format!("unsupported persistent id {pid:?}"))?;
    if items.first().and_then(Value::as_str) != Some("storage") || items.len() < 5 {
        return Err(format!("unsupported persistent id {pid:?}"));
    }
    let dtype = match &items[1] {
        Value::Class(c) => pickle::storage_dtype(&c.name)
            .ok_or_else(|| format!("unsupported storage type {}", c.qualified()))?,
        other => return Err(format!("storage type is not a class: {other:?}")),
    };
    let key = match &items[2] {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key is not a string: {other:?}")),
    };
    if key.contains("..") || key.contains('/') {
        return Err(format!("invalid storage key {key:?}"));
    }
    let numel = items[4]
        .as_int()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("bad storage size {:?}", items[4]))?;
    Ok(Value::Storage(Rc::new(StorageRef { key, dtype, numel })))
}
