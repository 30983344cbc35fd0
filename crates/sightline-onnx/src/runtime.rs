//! ONNX Runtime backend: runs ONNX files behind the same pipelines as the Burn models.
//!
//! The library is loaded at run time (`ort`'s `load-dynamic`), never linked or downloaded at
//! build time. Where it comes from is a setting ([`locate_library`]): an explicit path
//! (`[inference] onnxruntime_library` in `sightline.toml`, `SIGHTLINE_ONNXRUNTIME_LIBRARY`, or a
//! flag), else `ORT_DYLIB_PATH`, else the copy `sightline runtime install` puts under
//! `<home>/onnxruntime/` (PyPI's `onnxruntime` wheel ships `onnxruntime/capi/libonnxruntime.so.*`,
//! usable without Python at run time). [`resolve`] turns the user's preference
//! (`auto`, `burn`, `onnxruntime`) and that lookup into the runtime to use and why.
//!
//! [`OrtNetwork`] implements [`ExternalNetwork`]: give it to
//! [`Segmenter::with_network`](sightline_vision::segment::Segmenter::with_network) or
//! [`Classifier::with_network`](sightline_vision::classify::Classifier::with_network). Sessions
//! run with `&mut` in `ort`, so one network serialises its calls with a mutex; ONNX Runtime
//! parallelises inside each call (intra-op threads).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use sightline_vision::VisionError;
use sightline_vision::network::{ExternalNetwork, FlatTensor};

/// Environment variable `ort` itself reads for the library path.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Why the ONNX Runtime backend could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The shared library could not be loaded (missing file, wrong version, not ONNX Runtime).
    #[error("cannot load ONNX Runtime from {path}")]
    Load {
        /// The library tried.
        path: PathBuf,
        /// The loader's reason.
        #[source]
        source: ort::LoadDynamicError,
    },
    /// A library was already loaded in this process from another path.
    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process; cannot switch to {requested}"
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The one asked for.
        requested: PathBuf,
    },
    /// ONNX Runtime refused the model or a call.
    #[error("ONNX Runtime: {context}")]
    Ort {
        /// What was being done.
        context: String,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },
    /// The model's inputs or outputs are not what the pipeline needs.
    #[error("ONNX model: {0}")]
    Model(String),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An unknown runtime or provider name.
    #[error("{0}")]
    InvalidArgument(String),
}

fn ort_err<E: Into<ort::Error>>(context: impl Into<String>) -> impl FnOnce(E) -> RuntimeError {
    let context = context.into();
    move |e| RuntimeError::Ort {
        context,
        source: e.into(),
    }
}

/// The user's choice of inference runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimePreference {
    /// ONNX Runtime when its library is found, else Burn (with a notice).
    #[default]
    Auto,
    /// Always Burn (the models' own modules).
    Burn,
    /// Always ONNX Runtime; an error when the library cannot be loaded.
    OnnxRuntime,
}

impl FromStr for RuntimePreference {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "burn" => Ok(Self::Burn),
            "onnxruntime" | "ort" | "onnx" => Ok(Self::OnnxRuntime),
            other => Err(RuntimeError::InvalidArgument(format!(
                "unknown runtime `{other}`; expected auto, burn or onnxruntime"
            ))),
        }
    }
}

impl fmt::Display for RuntimePreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Burn => "burn",
            Self::OnnxRuntime => "onnxruntime",
        })
    }
}

/// ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// The CPU provider (always present).
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs a library built with it, e.g. the `onnxruntime-gpu` wheel).
    Cuda {
        /// GPU index.
        device: i32,
    },
    /// NVIDIA TensorRT (falls back to CUDA, then CPU, for nodes it cannot take).
    TensorRt {
        /// GPU index.
        device: i32,
    },
}

impl FromStr for Provider {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (name, index) = match s.split_once(':') {
            Some((n, i)) => (
                n.to_string(),
                i.parse::<i32>().map_err(|_| {
                    RuntimeError::InvalidArgument(format!("bad device index in provider `{s}`"))
                })?,
            ),
            None => (s.clone(), 0),
        };
        match name.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda { device: index }),
            "tensorrt" | "trt" => Ok(Self::TensorRt { device: index }),
            _ => Err(RuntimeError::InvalidArgument(format!(
                "unknown execution provider `{s}`; expected cpu, cuda[:N] or tensorrt[:N]"
            ))),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda { device } => write!(f, "cuda:{device}"),
            Self::TensorRt { device } => write!(f, "tensorrt:{device}"),
        }
    }
}

/// Where the library was found, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryLookup {
    /// The library file, when one was found.
    pub path: Option<PathBuf>,
    /// Where it came from (or what was searched), for `config settings` and notices.
    pub origin: String,
}

/// The folder `sightline runtime install` installs ONNX Runtime into.
pub fn install_dir(home: &Path) -> PathBuf {
    home.join("onnxruntime")
}

/// Finds the ONNX Runtime library: `setting` (file, environment or flag) first, then
/// `$ORT_DYLIB_PATH`, then `<home>/onnxruntime/` (a virtual environment made by
/// `sightline runtime install`). A configured path that does not exist is reported as missing
/// (no silent fallback to another copy).
pub fn locate_library(
    setting: Option<&Path>,
    home: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> LibraryLookup {
    if let Some(p) = setting {
        return LibraryLookup {
            path: p.is_file().then(|| p.to_path_buf()),
            origin: if p.is_file() {
                "the onnxruntime_library setting".into()
            } else {
                format!(
                    "the onnxruntime_library setting names {}, which does not exist",
                    p.display()
                )
            },
        };
    }
    if let Some(p) = env(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return LibraryLookup {
            path: p.is_file().then(|| p.clone()),
            origin: if p.is_file() {
                format!("${ORT_DYLIB_ENV}")
            } else {
                format!(
                    "${ORT_DYLIB_ENV} names {}, which does not exist",
                    p.display()
                )
            },
        };
    }
    let dir = install_dir(home);
    match find_in_tree(&dir) {
        Some(p) => LibraryLookup {
            path: Some(p),
            origin: format!("the copy installed under {}", dir.display()),
        },
        None => LibraryLookup {
            path: None,
            origin: format!(
                "not configured (no onnxruntime_library setting, no ${ORT_DYLIB_ENV}, nothing under {})",
                dir.display()
            ),
        },
    }
}

/// `libonnxruntime.so*` (or `.dylib` / `onnxruntime.dll`) under `dir`, searched where a
/// virtual environment puts the wheel: `lib/python*/site-packages/onnxruntime/capi/`, or
/// directly in `dir`.
pub fn find_in_tree(dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![dir.to_path_buf(), dir.join("capi")];
    for lib in ["lib", "lib64"] {
        if let Ok(entries) = fs_err::read_dir(dir.join(lib)) {
            let mut pys: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("python"))
                })
                .collect();
            pys.sort();
            for py in pys {
                candidates.push(py.join("site-packages/onnxruntime/capi"));
            }
        }
    }
    candidates.into_iter().find_map(|d| library_in(&d))
}

fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                (n.starts_with("libonnxruntime.so")
                    || n == "libonnxruntime.dylib"
                    || n == "onnxruntime.dll")
                    && !n.contains("providers")
            })
        })
        .collect();
    // Prefer the fully versioned file (the wheel ships only that one).
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

/// The runtime that will run inference, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The library to load when ONNX Runtime runs, `None` for Burn.
    pub onnxruntime: Option<PathBuf>,
    /// One line for `config settings` / notices.
    pub reason: String,
}

impl Resolved {
    /// Short name: `onnxruntime` or `burn`.
    pub fn name(&self) -> &'static str {
        if self.onnxruntime.is_some() {
            "onnxruntime"
        } else {
            "burn"
        }
    }
}

/// How to get the fast runtime, for the one-line notice when Burn is used by default.
pub const INSTALL_HINT: &str = "run `sightline runtime install` (pip-installs the onnxruntime wheel into <home>/onnxruntime) or set onnxruntime_library / SIGHTLINE_ONNXRUNTIME_LIBRARY to a libonnxruntime.so (about 6x faster inference than Burn, docs/perf.md)";

/// Chooses the runtime from the preference and the library lookup. `OnnxRuntime` without a
/// library is an error; `Auto` without one is Burn with the reason (callers print a notice).
pub fn resolve(pref: RuntimePreference, lookup: &LibraryLookup) -> Result<Resolved, RuntimeError> {
    match (pref, &lookup.path) {
        (RuntimePreference::Burn, _) => Ok(Resolved {
            onnxruntime: None,
            reason: "burn: chosen by the runtime setting".into(),
        }),
        (_, Some(p)) => Ok(Resolved {
            onnxruntime: Some(p.clone()),
            reason: format!(
                "onnxruntime: {} ({}, runtime {pref})",
                p.display(),
                lookup.origin
            ),
        }),
        (RuntimePreference::OnnxRuntime, None) => Err(RuntimeError::InvalidArgument(format!(
            "runtime onnxruntime was asked for but its library was not found: {}; {INSTALL_HINT}",
            lookup.origin
        ))),
        (RuntimePreference::Auto, None) => Ok(Resolved {
            onnxruntime: None,
            reason: format!("burn: ONNX Runtime {}", lookup.origin),
        }),
    }
}

static LOADED: OnceLock<PathBuf> = OnceLock::new();
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Loads the library once per process (later calls with the same path are free; another path
/// is an error). Returns the ONNX Runtime version string.
pub fn init(library: &Path) -> Result<String, RuntimeError> {
    let _guard = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(loaded) = LOADED.get() {
        if loaded != library {
            return Err(RuntimeError::AlreadyLoaded {
                loaded: loaded.clone(),
                requested: library.to_path_buf(),
            });
        }
        return Ok(version());
    }
    let environment = ort::init_from(library)
        .map_err(|source| RuntimeError::Load {
            path: library.to_path_buf(),
            source,
        })?
        .with_name("sightline")
        .build()
        .map_err(ort_err("creating the ONNX Runtime environment"))?;
    let _ = ENVIRONMENT.set(environment);
    let _ = LOADED.set(library.to_path_buf());
    Ok(version())
}

fn environment() -> Result<&'static ort::environment::Environment, RuntimeError> {
    ENVIRONMENT.get().ok_or_else(|| {
        RuntimeError::InvalidArgument(
            "ONNX Runtime is not loaded (call runtime::init first)".into(),
        )
    })
}

/// The loaded library's version (`1.32.0`, from its build info, else its file name), or an
/// empty string before [`init`].
pub fn version() -> String {
    let Some(path) = LOADED.get() else {
        return String::new();
    };
    let info = ort::info();
    if let Some(rest) = info.split("git-branch=rel-").nth(1) {
        return rest.split([',', ' ']).next().unwrap_or(rest).to_string();
    }
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split(".so.").nth(1))
        .unwrap_or("(unknown version)")
        .to_string()
}

/// Options of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Intra-op threads (`None`: ONNX Runtime's default, one per physical core).
    pub threads: Option<usize>,
    /// Execution provider.
    pub provider: Provider,
}

/// An ONNX model loaded into an ONNX Runtime session, usable as a pipeline's forward pass.
pub struct OrtNetwork {
    session: Mutex<Session>,
    input: String,
    outputs: Vec<String>,
    description: String,
    metadata: Vec<(String, String)>,
}

impl fmt::Debug for OrtNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrtNetwork")
            .field("input", &self.input)
            .field("outputs", &self.outputs)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

impl OrtNetwork {
    /// Loads `library` (see [`init`]) and creates a session from an ONNX file's bytes. The model
    /// must have one input; outputs are returned in the file's order.
    pub fn from_bytes(
        library: &Path,
        model: &[u8],
        options: &SessionOptions,
    ) -> Result<Self, RuntimeError> {
        let version = init(library)?;
        let mut builder = Session::builder(environment()?)
            .map_err(ort_err("creating a session"))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(ort_err("setting the optimisation level"))?;
        if let Some(n) = options.threads {
            builder = builder
                .with_intra_threads(n.max(1))
                .map_err(ort_err("setting intra-op threads"))?;
        }
        builder = match options.provider {
            Provider::Cpu => builder,
            Provider::Cuda { device } => builder
                .with_execution_providers([ort::ep::CUDA::default()
                    .with_device_id(device)
                    .build()
                    .error_on_failure()])
                .map_err(ort_err("registering the CUDA execution provider"))?,
            Provider::TensorRt { device } => builder
                .with_execution_providers([
                    ort::ep::TensorRT::default()
                        .with_device_id(device)
                        .build()
                        .error_on_failure(),
                    ort::ep::CUDA::default().with_device_id(device).build(),
                ])
                .map_err(ort_err("registering the TensorRT execution provider"))?,
        };
        let session = builder
            .commit_from_memory(model)
            .map_err(ort_err("loading the model"))?;
        let inputs: Vec<String> = session
            .inputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(RuntimeError::Model(format!(
                "expected one input, found {} ({})",
                inputs.len(),
                inputs.join(", ")
            )));
        };
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let mut metadata = Vec::new();
        if let Ok(md) = session.metadata()
            && let Ok(keys) = md.custom_keys()
        {
            for k in keys {
                if let Some(v) = md.custom(&k) {
                    metadata.push((k, v));
                }
            }
        }
        metadata.sort();
        Ok(Self {
            input: input.clone(),
            outputs,
            description: format!("onnxruntime {version} ({})", options.provider),
            metadata,
            session: Mutex::new(session),
        })
    }

    /// [`OrtNetwork::from_bytes`] from a file.
    pub fn from_file(
        library: &Path,
        model: &Path,
        options: &SessionOptions,
    ) -> Result<Self, RuntimeError> {
        let bytes = fs_err::read(model)?;
        Self::from_bytes(library, &bytes, options)
    }

    /// Output names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The model's metadata properties (sorted by key).
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// Runs one NCHW batch; every output as a flat f32 tensor.
    pub fn run_batch(
        &self,
        input: &[f32],
        shape: [usize; 4],
    ) -> Result<Vec<FlatTensor>, RuntimeError> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let tensor = TensorRef::from_array_view((dims, input))
            .map_err(ort_err("wrapping the input batch"))?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(ort_err("running the model"))?;
        let mut out = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = &outputs[name.as_str()];
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(ort_err(format!("reading output `{name}`")))?;
            let shape: Vec<usize> = shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| RuntimeError::Model(format!("output `{name}` has shape {shape:?}")))?;
            out.push(FlatTensor {
                shape,
                data: data.to_vec(),
            });
        }
        Ok(out)
    }
}

impl ExternalNetwork for OrtNetwork {
    fn run(&self, input: &[f32], shape: [usize; 4]) -> sightline_vision::Result<Vec<FlatTensor>> {
        self.run_batch(input, shape)
            .map_err(|e| VisionError::TensorData(error_chain(&e)))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

pub use sightline_core::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_and_providers_parse() {
        assert_eq!(
            "AUTO".parse::<RuntimePreference>().unwrap(),
            RuntimePreference::Auto
        );
        assert_eq!(
            "ort".parse::<RuntimePreference>().unwrap(),
            RuntimePreference::OnnxRuntime
        );
        assert!("tvm".parse::<RuntimePreference>().is_err());
        assert_eq!(
            "cuda:1".parse::<Provider>().unwrap(),
            Provider::Cuda { device: 1 }
        );
        assert_eq!(
            "tensorrt".parse::<Provider>().unwrap(),
            Provider::TensorRt { device: 0 }
        );
        assert!("cuda:x".parse::<Provider>().is_err());
        assert!("rocm".parse::<Provider>().is_err());
    }

    #[test]
    fn lookup_order_and_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let none = |_: &str| None;
        let l = locate_library(None, &home, &none);
        assert_eq!(l.path, None);
        let r = resolve(RuntimePreference::Auto, &l).unwrap();
        assert_eq!(r.name(), "burn");
        assert!(resolve(RuntimePreference::OnnxRuntime, &l).is_err());

        // A venv layout under <home>/onnxruntime is found.
        let capi = install_dir(&home).join("lib/python3.11/site-packages/onnxruntime/capi");
        fs_err::create_dir_all(&capi).unwrap();
        fs_err::write(capi.join("libonnxruntime.so.1.32.0"), b"x").unwrap();
        fs_err::write(capi.join("libonnxruntime_providers_shared.so"), b"x").unwrap();
        let l = locate_library(None, &home, &none);
        assert_eq!(l.path, Some(capi.join("libonnxruntime.so.1.32.0")));
        assert_eq!(
            resolve(RuntimePreference::Auto, &l).unwrap().name(),
            "onnxruntime"
        );
        assert_eq!(resolve(RuntimePreference::Burn, &l).unwrap().name(), "burn");

        // The environment variable wins over the installed copy, the setting over both; a
        // missing configured file is reported, not replaced by another copy.
        let other = dir.path().join("libonnxruntime.so");
        fs_err::write(&other, b"x").unwrap();
        let env_val = other.display().to_string();
        let env = move |k: &str| (k == ORT_DYLIB_ENV).then(|| env_val.clone());
        assert_eq!(locate_library(None, &home, &env).path, Some(other.clone()));
        let missing = dir.path().join("nope.so");
        let l = locate_library(Some(&missing), &home, &env);
        assert_eq!(l.path, None);
        assert!(l.origin.contains("does not exist"));
    }

    #[test]
    fn a_file_that_is_not_the_library_is_a_load_error() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so.1.99.0");
        fs_err::write(&fake, b"not a shared object").unwrap();
        // Only meaningful while nothing is loaded in this test process.
        if LOADED.get().is_none() {
            let e = init(&fake).unwrap_err();
            assert!(matches!(e, RuntimeError::Load { .. }), "{e}");
        }
    }
}
