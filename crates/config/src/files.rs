//! Config files on disk: which files a folder holds, and reading one within the size cap.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::check::MAX_CONFIG_BYTES;

/// A config file read from disk.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file name without its extension: the tenant slug when the file has no `tenant` key.
    pub stem: String,
    pub text: String,
}

/// Why a config file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    TooLarge { bytes: u64 },
    NotUtf8,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "{error}"),
            Self::TooLarge { bytes } => {
                write!(
                    f,
                    "file is {bytes} bytes; the limit is {MAX_CONFIG_BYTES} bytes"
                )
            }
            Self::NotUtf8 => f.write_str("file is not UTF-8 text"),
        }
    }
}

impl std::error::Error for ReadError {}

/// The `*.yaml` and `*.yml` files directly inside `dir`, sorted by name.
pub fn config_files_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_yaml = path
            .extension()
            .is_some_and(|extension| extension == "yaml" || extension == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a config file, refusing one larger than [`MAX_CONFIG_BYTES`] before reading it whole.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let limit = u64::try_from(MAX_CONFIG_BYTES).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        let size = std::fs::metadata(path).map_or(limit + 1, |meta| meta.len());
        return Err(ReadError::TooLarge { bytes: size });
    }
    let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)?;
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(ConfigFile {
        path: path.to_owned(),
        stem,
        text,
    })
}
