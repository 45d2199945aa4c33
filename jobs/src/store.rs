//! Directories and S3 buckets holding roomflow's files (the cold tier, backups): opening
//! one from a URL, and moving checked files in and out of it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

/// An opened store.
#[derive(Clone, Debug)]
pub struct Store {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Where it is, for messages.
    pub location: String,
    /// The directory, for a store that is one.
    pub local_dir: Option<PathBuf>,
}

/// Checks a store's URL and settings; `field` names them in messages (`jobs.cold`).
pub fn validate(field: &str, url: &str, options: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some((scheme, _)) = url.split_once("://") {
        if !matches!(scheme, "file" | "s3") {
            return Err(format!(
                "{field}.url: {scheme}:// is not supported (a directory, file:// or s3://)"
            ));
        }
    }
    for key in options.keys() {
        if key.parse::<object_store::aws::AmazonS3ConfigKey>().is_err() {
            return Err(format!("{field}.options: unknown setting {key}"));
        }
    }
    Ok(())
}

/// Opens a directory (a path, or `file:///…`) or an S3 bucket (`s3://bucket/prefix`) with
/// `options` (`aws_endpoint`, …; credentials also from the environment). A directory is
/// made by the first file written into it.
pub fn open(field: &str, url: &str, options: &BTreeMap<String, String>) -> Result<Store, String> {
    let mut local_dir = None;
    let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key = key
                .parse()
                .map_err(|_| format!("{field}.options: unknown setting {key}"))?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder.build().map_err(|e| format!("{url}: {e}"))?;
        match prefix.trim_matches('/') {
            "" => Arc::new(s3),
            p => Arc::new(object_store::prefix::PrefixStore::new(s3, p)),
        }
    } else {
        let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
        let dir = std::path::absolute(&dir)
            .map_err(|e| format!("{field}.url: {}: {e}", dir.display()))?;
        let local = object_store::local::LocalFileSystem::new().with_fsync(true);
        let root = Path::from(dir.to_string_lossy().as_ref());
        local_dir = Some(dir);
        Arc::new(object_store::prefix::PrefixStore::new(local, root))
    };
    Ok(Store {
        store,
        location: url.to_string(),
        local_dir,
    })
}

impl Store {
    /// Uploads a local file in parts, then reads it back whole: its size and SHA-256,
    /// the same both ways or an error.
    pub async fn upload(&self, from: &FsPath, to: &Path) -> Result<(u64, String), String> {
        let mut file = std::fs::File::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let upload = self
            .store
            .put_multipart(to)
            .await
            .map_err(|e| e.to_string())?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| e.to_string())?;
            writer.write(&buf[..n]);
            bytes += n as u64;
        }
        writer.finish().await.map_err(|e| e.to_string())?;
        let sha256 = hex(&hash.finalize());
        let (read_bytes, read_sha) = self.checksum(to).await?;
        if (read_bytes, &read_sha) != (bytes, &sha256) {
            return Err(format!(
                "{to}: read back {read_bytes} bytes with SHA-256 {read_sha}, wrote {bytes} with {sha256}"
            ));
        }
        Ok((bytes, sha256))
    }

    /// The size and SHA-256 of a stored file, read whole.
    pub async fn checksum(&self, path: &Path) -> Result<(u64, String), String> {
        self.fetch(path, None).await
    }

    /// Downloads a stored file to `to`, refusing it (and removing what was written)
    /// unless it has `bytes` bytes with SHA-256 `sha256`.
    pub async fn download(
        &self,
        path: &Path,
        to: &FsPath,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), String> {
        let outcome = self.fetch(path, Some(to)).await;
        match outcome {
            Ok((b, sha)) if b == bytes && sha == sha256 => Ok(()),
            other => {
                let _ = std::fs::remove_file(to);
                let (b, sha) = other?;
                Err(format!(
                    "{path}: {b} bytes with SHA-256 {sha}, but the manifest says {bytes} bytes with {sha256}"
                ))
            }
        }
    }

    /// Reads a stored file whole, hashing it and writing it to `to` if given.
    async fn fetch(&self, path: &Path, to: Option<&FsPath>) -> Result<(u64, String), String> {
        let mut stream = self
            .store
            .get(path)
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .into_stream();
        let mut out = match to {
            Some(to) => {
                Some(std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?)
            }
            None => None,
        };
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("{path}: {e}"))?;
            hash.update(&chunk);
            if let Some(out) = out.as_mut() {
                out.write_all(&chunk).map_err(|e| e.to_string())?;
            }
            bytes += chunk.len() as u64;
        }
        Ok((bytes, hex(&hash.finalize())))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
