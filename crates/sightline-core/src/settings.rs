//! Layered configuration: built-in defaults < `sightline.toml` < `SIGHTLINE_*` environment
//! variables < command-line flags.
//!
//! The file is `--config-file`, else `$SIGHTLINE_CONFIG`, else `sightline.toml` in the current
//! directory when it exists. Relative paths in the file are relative to the file's folder;
//! relative paths from the environment or flags are relative to the current directory.
//!
//! ```toml
//! home = ".sightline"                  # data dir: SQLite database, caches ($SIGHTLINE_HOME)
//! database_url = "postgres://u@h/db"   # default sqlite://<home>/sightline.db
//! weights_dir = "pretrained"           # where `weights: imagenet` files are looked up
//!
//! [artifacts]
//! backend = "local"                    # or "s3" (implied when `bucket` is set)
//! root = "artifacts"                   # local store root, default <cwd>/artifacts
//! bucket = "sightline"                 # S3-compatible store
//! prefix = "line-a"
//! endpoint = "http://127.0.0.1:9000"
//! region = "us-east-1"
//! allow_http = true
//!
//! [inference]
//! runtime = "auto"                     # auto (ONNX Runtime when found), burn, onnxruntime
//! onnxruntime_library = "/opt/ort/lib/libonnxruntime.so.1.32.0"
//! provider = "cpu"                     # ONNX Runtime execution provider: cpu, cuda[:N], tensorrt[:N]
//! threads = 2                          # ONNX Runtime intra-op threads (default: its own)
//! ```
//!
//! Environment: `SIGHTLINE_HOME`, `SIGHTLINE_DATABASE_URL` (then `DATABASE_URL`),
//! `SIGHTLINE_WEIGHTS_DIR`, `SIGHTLINE_ARTIFACTS_BACKEND`, `SIGHTLINE_ARTIFACTS_ROOT`,
//! `SIGHTLINE_S3_BUCKET`, `SIGHTLINE_S3_PREFIX`, `SIGHTLINE_S3_ENDPOINT`, `SIGHTLINE_S3_REGION`,
//! `SIGHTLINE_S3_ALLOW_HTTP`, `SIGHTLINE_RUNTIME`, `SIGHTLINE_ONNXRUNTIME_LIBRARY`,
//! `SIGHTLINE_ORT_PROVIDER`, `SIGHTLINE_ORT_THREADS`, `SIGHTLINE_CONFIG`. S3 credentials come from the usual `AWS_*`
//! variables, never from the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the configuration file looked up in the current directory.
pub const CONFIG_FILE_NAME: &str = "sightline.toml";

/// Where artifacts (experiments, reports, bundles) are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum ArtifactSettings {
    /// A local folder (default `<cwd>/artifacts`, the seed's layout).
    Local {
        /// Root folder of the store.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Settings),
}

/// An S3-compatible object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket ("" for none).
    pub prefix: String,
    /// Custom endpoint (MinIO, Ceph...), `None` for AWS.
    pub endpoint: Option<String>,
    /// Region, `None` for the client's default.
    pub region: Option<String>,
    /// Allow plain-HTTP endpoints.
    pub allow_http: bool,
}

/// Fully resolved settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Data directory (absolute).
    pub home: PathBuf,
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// Folder of user-provided pretrained weights (`weights: imagenet`), default `<home>/weights`.
    pub weights_dir: PathBuf,
    /// Artifact store.
    pub artifacts: ArtifactSettings,
    /// Inference runtime.
    pub inference: InferenceSettings,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
}

/// Which engine runs inference (predict, evaluate, the server, bench). Values are kept as
/// given; `sightline-onnx` parses and resolves them (library lookup, provider names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSettings {
    /// `auto` (default), `burn` or `onnxruntime`.
    pub runtime: Option<String>,
    /// Path of the ONNX Runtime shared library (`libonnxruntime.so.*`).
    pub onnxruntime_library: Option<PathBuf>,
    /// ONNX Runtime execution provider: `cpu` (default), `cuda[:N]`, `tensorrt[:N]`.
    pub provider: Option<String>,
    /// ONNX Runtime intra-op threads.
    pub threads: Option<usize>,
}

impl InferenceSettings {
    /// `self` over `lower`: each value set here wins.
    pub fn over(self, lower: InferenceSettings) -> InferenceSettings {
        InferenceSettings {
            runtime: self.runtime.or(lower.runtime),
            onnxruntime_library: self.onnxruntime_library.or(lower.onnxruntime_library),
            provider: self.provider.or(lower.provider),
            threads: self.threads.or(lower.threads),
        }
    }
}

/// One layer of optional values (a file, the environment, or flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    /// Data directory.
    pub home: Option<PathBuf>,
    /// Database URL.
    pub database_url: Option<String>,
    /// Pretrained weights folder.
    pub weights_dir: Option<PathBuf>,
    /// Artifact store options.
    #[serde(default)]
    pub artifacts: ArtifactsLayer,
    /// Inference runtime options.
    #[serde(default)]
    pub inference: InferenceSettings,
}

/// Artifact options of one layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsLayer {
    /// `local` or `s3`.
    pub backend: Option<String>,
    /// Local root folder.
    pub root: Option<PathBuf>,
    /// S3 bucket.
    pub bucket: Option<String>,
    /// S3 key prefix.
    pub prefix: Option<String>,
    /// S3 endpoint.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Allow plain HTTP.
    pub allow_http: Option<bool>,
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The configuration file is not valid TOML for this schema.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is invalid.
    #[error("invalid setting `{key}` (from {source_name}): {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Where the value came from (file, environment variable, flag).
        source_name: String,
        /// What is wrong.
        message: String,
    },
}

impl SettingsLayer {
    /// Read a layer from environment variables through `get` (`std::env::var` in production;
    /// a map in tests). Relative paths are made absolute against `cwd`.
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Self, SettingsError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let path = |k: &str| get(k).map(|v| cwd.join(v));
        let allow_http = match get("SIGHTLINE_S3_ALLOW_HTTP") {
            None => None,
            Some(v) => Some(parse_bool(&v).ok_or_else(|| SettingsError::Invalid {
                key: "allow_http",
                source_name: "environment variable SIGHTLINE_S3_ALLOW_HTTP".into(),
                message: format!("expected true or false, found `{v}`"),
            })?),
        };
        let threads = match get("SIGHTLINE_ORT_THREADS") {
            None => None,
            Some(v) => Some(v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                SettingsError::Invalid {
                    key: "inference.threads",
                    source_name: "environment variable SIGHTLINE_ORT_THREADS".into(),
                    message: format!("expected a positive number, found `{v}`"),
                }
            })?),
        };
        Ok(Self {
            inference: InferenceSettings {
                runtime: get("SIGHTLINE_RUNTIME"),
                onnxruntime_library: path("SIGHTLINE_ONNXRUNTIME_LIBRARY"),
                provider: get("SIGHTLINE_ORT_PROVIDER"),
                threads,
            },
            home: path("SIGHTLINE_HOME"),
            database_url: get("SIGHTLINE_DATABASE_URL").or_else(|| get("DATABASE_URL")),
            weights_dir: path("SIGHTLINE_WEIGHTS_DIR"),
            artifacts: ArtifactsLayer {
                backend: get("SIGHTLINE_ARTIFACTS_BACKEND"),
                root: path("SIGHTLINE_ARTIFACTS_ROOT"),
                bucket: get("SIGHTLINE_S3_BUCKET"),
                prefix: get("SIGHTLINE_S3_PREFIX"),
                endpoint: get("SIGHTLINE_S3_ENDPOINT"),
                region: get("SIGHTLINE_S3_REGION"),
                allow_http,
            },
        })
    }

    /// Read a `sightline.toml`; relative paths become relative to the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = fs_err::read_to_string(path)?;
        let mut layer: SettingsLayer = toml::from_str(&text).map_err(|e| SettingsError::File {
            file: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut Option<PathBuf>| {
            if let Some(v) = p.as_mut()
                && v.is_relative()
            {
                *v = dir.join(&*v);
            }
        };
        rebase(&mut layer.home);
        rebase(&mut layer.weights_dir);
        rebase(&mut layer.artifacts.root);
        rebase(&mut layer.inference.onnxruntime_library);
        Ok(layer)
    }

    /// `self` over `lower`: each value set here wins.
    pub fn over(self, lower: SettingsLayer) -> SettingsLayer {
        let a = self.artifacts;
        let b = lower.artifacts;
        SettingsLayer {
            inference: self.inference.over(lower.inference),
            home: self.home.or(lower.home),
            database_url: self.database_url.or(lower.database_url),
            weights_dir: self.weights_dir.or(lower.weights_dir),
            artifacts: ArtifactsLayer {
                backend: a.backend.or(b.backend),
                root: a.root.or(b.root),
                bucket: a.bucket.or(b.bucket),
                prefix: a.prefix.or(b.prefix),
                endpoint: a.endpoint.or(b.endpoint),
                region: a.region.or(b.region),
                allow_http: a.allow_http.or(b.allow_http),
            },
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl Settings {
    /// Resolve settings from the process environment, the configuration file and `flags`
    /// (a layer built from the command line; relative paths in it are taken against `cwd`).
    /// `config_file` is `--config-file`.
    pub fn resolve(
        cwd: &Path,
        config_file: Option<&Path>,
        flags: SettingsLayer,
    ) -> Result<Self, SettingsError> {
        Self::resolve_with(cwd, config_file, flags, &|k| std::env::var(k).ok())
    }

    /// [`Settings::resolve`] with an explicit environment lookup (for tests).
    pub fn resolve_with(
        cwd: &Path,
        config_file: Option<&Path>,
        flags: SettingsLayer,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let file = match config_file {
            Some(p) => Some(cwd.join(p)),
            None => match env("SIGHTLINE_CONFIG").filter(|v| !v.is_empty()) {
                Some(p) => Some(cwd.join(p)),
                None => Some(cwd.join(CONFIG_FILE_NAME)).filter(|p| p.is_file()),
            },
        };
        let file_layer = match &file {
            Some(p) => SettingsLayer::from_file(p)?,
            None => SettingsLayer::default(),
        };
        let env_layer = SettingsLayer::from_env(env, cwd)?;
        let mut flags = flags;
        for p in [
            &mut flags.home,
            &mut flags.weights_dir,
            &mut flags.artifacts.root,
            &mut flags.inference.onnxruntime_library,
        ] {
            if let Some(v) = p.as_mut() {
                *v = cwd.join(&*v);
            }
        }
        let merged = flags.over(env_layer.over(file_layer));
        Self::from_layer(cwd, merged, file)
    }

    fn from_layer(
        cwd: &Path,
        l: SettingsLayer,
        config_file: Option<PathBuf>,
    ) -> Result<Self, SettingsError> {
        let home = l.home.unwrap_or_else(|| cwd.join(".sightline"));
        let database_url = match l.database_url {
            Some(url) => {
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"))
                {
                    return Err(SettingsError::Invalid {
                        key: "database_url",
                        source_name: "configuration".into(),
                        message: format!(
                            "`{}` is neither a sqlite: nor a postgres:// URL",
                            redact_url(&url)
                        ),
                    });
                }
                url
            }
            None => format!("sqlite://{}", home.join("sightline.db").display()),
        };
        let weights_dir = l.weights_dir.unwrap_or_else(|| home.join("weights"));
        let a = l.artifacts;
        let backend = match a.backend.as_deref() {
            Some(b) => b.to_ascii_lowercase(),
            None if a.bucket.is_some() => "s3".to_string(),
            None => "local".to_string(),
        };
        let artifacts = match backend.as_str() {
            "local" => ArtifactSettings::Local {
                root: a.root.unwrap_or_else(|| cwd.join("artifacts")),
            },
            "s3" => {
                let bucket = a.bucket.filter(|b| !b.is_empty()).ok_or(SettingsError::Invalid {
                    key: "artifacts.bucket",
                    source_name: "configuration".into(),
                    message: "the s3 artifact backend needs a bucket (SIGHTLINE_S3_BUCKET or [artifacts] bucket)".into(),
                })?;
                ArtifactSettings::S3(S3Settings {
                    bucket,
                    prefix: a.prefix.unwrap_or_default().trim_matches('/').to_string(),
                    endpoint: a.endpoint,
                    region: a.region,
                    allow_http: a.allow_http.unwrap_or(false),
                })
            }
            other => {
                return Err(SettingsError::Invalid {
                    key: "artifacts.backend",
                    source_name: "configuration".into(),
                    message: format!("unknown backend `{other}`; expected `local` or `s3`"),
                });
            }
        };
        if let Some(0) = l.inference.threads {
            return Err(SettingsError::Invalid {
                key: "inference.threads",
                source_name: "configuration".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(Settings {
            home,
            database_url,
            weights_dir,
            artifacts,
            inference: l.inference,
            config_file,
        })
    }

    /// The database URL with any password replaced by `***`, for logs and messages.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }
}

/// Replace the password of a URL (`scheme://user:password@host`) with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***@{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at + 1..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults() {
        let cwd = tempfile::tempdir().unwrap();
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env_of(&[]))
            .unwrap();
        assert_eq!(s.home, cwd.path().join(".sightline"));
        assert_eq!(
            s.database_url,
            format!(
                "sqlite://{}",
                cwd.path().join(".sightline/sightline.db").display()
            )
        );
        assert_eq!(
            s.artifacts,
            ArtifactSettings::Local {
                root: cwd.path().join("artifacts")
            }
        );
        assert_eq!(s.weights_dir, cwd.path().join(".sightline/weights"));
        assert_eq!(s.config_file, None);
    }

    #[test]
    fn layering_file_env_flags() {
        let cwd = tempfile::tempdir().unwrap();
        fs_err::write(
            cwd.path().join("sightline.toml"),
            "home = \"data\"\ndatabase_url = \"sqlite://file.db\"\nweights_dir = \"w\"\n[artifacts]\nroot = \"store\"\n",
        )
        .unwrap();
        // file only
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env_of(&[]))
            .unwrap();
        assert_eq!(s.home, cwd.path().join("data"));
        assert_eq!(s.database_url, "sqlite://file.db");
        assert_eq!(s.weights_dir, cwd.path().join("w"));
        assert_eq!(
            s.artifacts,
            ArtifactSettings::Local {
                root: cwd.path().join("store")
            }
        );
        assert_eq!(s.config_file, Some(cwd.path().join("sightline.toml")));
        // env over file; DATABASE_URL below SIGHTLINE_DATABASE_URL
        let env = env_of(&[
            ("SIGHTLINE_HOME", "envhome"),
            ("DATABASE_URL", "postgres://a@h/x"),
            ("SIGHTLINE_DATABASE_URL", "postgres://b@h/y"),
        ]);
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap();
        assert_eq!(s.home, cwd.path().join("envhome"));
        assert_eq!(s.database_url, "postgres://b@h/y");
        assert_eq!(
            s.weights_dir,
            cwd.path().join("w"),
            "file value kept where env is silent"
        );
        // flags over env
        let flags = SettingsLayer {
            home: Some(PathBuf::from("flaghome")),
            database_url: Some("sqlite://flag.db".into()),
            ..Default::default()
        };
        let s = Settings::resolve_with(cwd.path(), None, flags, &env).unwrap();
        assert_eq!(s.home, cwd.path().join("flaghome"));
        assert_eq!(s.database_url, "sqlite://flag.db");
    }

    #[test]
    fn inference_settings_layer() {
        let cwd = tempfile::tempdir().unwrap();
        fs_err::write(
            cwd.path().join("sightline.toml"),
            "[inference]\nruntime = \"burn\"\nonnxruntime_library = \"ort/lib.so\"\nthreads = 3\n",
        )
        .unwrap();
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env_of(&[]))
            .unwrap();
        assert_eq!(s.inference.runtime.as_deref(), Some("burn"));
        assert_eq!(
            s.inference.onnxruntime_library,
            Some(cwd.path().join("ort/lib.so"))
        );
        assert_eq!(s.inference.threads, Some(3));
        assert_eq!(s.inference.provider, None);
        let env = env_of(&[
            ("SIGHTLINE_RUNTIME", "onnxruntime"),
            ("SIGHTLINE_ORT_PROVIDER", "cuda:1"),
        ]);
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap();
        assert_eq!(s.inference.runtime.as_deref(), Some("onnxruntime"));
        assert_eq!(s.inference.provider.as_deref(), Some("cuda:1"));
        assert_eq!(s.inference.threads, Some(3), "file value kept");
        let bad = env_of(&[("SIGHTLINE_ORT_THREADS", "many")]);
        let e =
            Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &bad).unwrap_err();
        assert!(e.to_string().contains("SIGHTLINE_ORT_THREADS"), "{e}");
        fs_err::write(
            cwd.path().join("sightline.toml"),
            "[inference]\nthreads = 0\n",
        )
        .unwrap();
        assert!(
            Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env_of(&[]))
                .is_err()
        );
    }

    #[test]
    fn default_database_follows_home() {
        let cwd = tempfile::tempdir().unwrap();
        let env = env_of(&[("SIGHTLINE_HOME", "/srv/sl")]);
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap();
        assert_eq!(s.database_url, "sqlite:///srv/sl/sightline.db");
    }

    #[test]
    fn file_paths_are_relative_to_the_file() {
        let cwd = tempfile::tempdir().unwrap();
        let conf = cwd.path().join("conf");
        fs_err::create_dir_all(&conf).unwrap();
        fs_err::write(conf.join("x.toml"), "home = \"h\"\n").unwrap();
        let s = Settings::resolve_with(
            cwd.path(),
            Some(Path::new("conf/x.toml")),
            SettingsLayer::default(),
            &env_of(&[]),
        )
        .unwrap();
        assert_eq!(s.home, conf.join("h"));
    }

    #[test]
    fn s3_settings() {
        let cwd = tempfile::tempdir().unwrap();
        let env = env_of(&[
            ("SIGHTLINE_S3_BUCKET", "models"),
            ("SIGHTLINE_S3_PREFIX", "/line-a/"),
            ("SIGHTLINE_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("SIGHTLINE_S3_ALLOW_HTTP", "true"),
        ]);
        let s = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap();
        assert_eq!(
            s.artifacts,
            ArtifactSettings::S3(S3Settings {
                bucket: "models".into(),
                prefix: "line-a".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: None,
                allow_http: true,
            })
        );
        let env = env_of(&[("SIGHTLINE_ARTIFACTS_BACKEND", "s3")]);
        let err =
            Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap_err();
        assert!(err.to_string().contains("needs a bucket"), "{err}");
    }

    #[test]
    fn bad_file_names_line() {
        let cwd = tempfile::tempdir().unwrap();
        fs_err::write(
            cwd.path().join("sightline.toml"),
            "home = \"h\"\nhomme = 1\n",
        )
        .unwrap();
        let err = Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env_of(&[]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("sightline.toml") && msg.contains("line 2") && msg.contains("homme"),
            "{msg}"
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let cwd = tempfile::tempdir().unwrap();
        let err = Settings::resolve_with(
            cwd.path(),
            Some(Path::new("nope.toml")),
            SettingsLayer::default(),
            &env_of(&[]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn bad_database_url() {
        let cwd = tempfile::tempdir().unwrap();
        let env = env_of(&[("DATABASE_URL", "mysql://u:secret@h/db")]);
        let err =
            Settings::resolve_with(cwd.path(), None, SettingsLayer::default(), &env).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("mysql://u:***@h/db") && !msg.contains("secret"),
            "{msg}"
        );
    }
}
