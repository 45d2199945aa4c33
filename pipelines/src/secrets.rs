//! Tenant secrets at rest.
//!
//! A tenant's webhook URLs and signing secrets are sealed (AES-256-GCM) under the tenant's
//! own data key before they reach the registry topic, `roomflow.tenants`. The data keys
//! live in `rf_platform.tenant_keys`, each wrapped (AES-256-GCM) under a platform key from
//! the key file. Erasing a tenant deletes its data keys: every sealed value it left in the
//! compacted topic is unreadable from then on, compacted away or not.
//!
//! Rotating the platform key: put a new key first in the key file (`roomflow keys
//! generate`), run `roomflow keys rewrap`, then remove the old key. The registry topic is
//! not rewritten; only the data keys are wrapped again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use rf_schemas::{TenantConfig, TenantId};
use rf_sinks::config::ClickHouseConfig;

/// Where the platform keys come from.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The platform key file: one key per line, `<id> <64 hex digits>` (`roomflow keys
    /// generate` prints one); the first wraps new data keys, the others only unwrap
    /// (rotation). `#` starts a comment. It must not be readable by other users.
    /// Empty: the built-in development key, refused unless the brokers and ClickHouse are
    /// on this machine.
    pub key_file: String,
}

impl SecretsConfig {
    /// Checks that the key file can be read and parsed; without one, that everything the
    /// sealed values pass through is on this machine (`brokers`, `clickhouse_url`).
    pub fn validate(&self, brokers: &str, clickhouse_url: &str) -> Result<(), String> {
        if !self.key_file.is_empty() {
            return Keyring::load(self).map(drop).map_err(|e| e.to_string());
        }
        let loopback =
            |url: &str| rf_sinks::endpoint::Endpoint::parse(url).is_some_and(|e| e.is_loopback());
        let brokers_local = brokers
            .split(',')
            .all(|b| loopback(&format!("kafka://{}", b.trim())));
        if brokers_local && loopback(clickhouse_url) {
            Ok(())
        } else {
            Err(
                "secrets.key_file: must name the platform key file (see `roomflow keys \
                 generate`): tenants' webhook URLs and secrets are encrypted under it, and \
                 the built-in development key is for a stack on this machine only"
                    .into(),
            )
        }
    }
}

/// Why a secret cannot be sealed or opened.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file is missing, unreadable, too open or malformed.
    #[error("secrets.key_file: {0}")]
    KeyFile(String),
    /// The data keys' table could not be read or written.
    #[error("clickhouse: rf_platform.tenant_keys: {0}")]
    ClickHouse(String),
    /// A sealed value names a data key that is not there: erased, or never made here.
    #[error("tenant {tenant}: its secrets are sealed under data key {key_id}, which rf_platform.tenant_keys does not hold (was the tenant erased?)")]
    NoDataKey {
        /// The tenant.
        tenant: String,
        /// The missing key.
        key_id: String,
    },
    /// A data key is wrapped under a platform key the key file does not hold.
    #[error("tenant {tenant}: data key {key_id} is wrapped under platform key {kek_id:?}, which the key file does not hold (rotation: keep the old key until `roomflow keys rewrap` ran)")]
    NoPlatformKey {
        /// The tenant.
        tenant: String,
        /// The data key.
        key_id: String,
        /// The platform key it is wrapped under.
        kek_id: String,
    },
    /// A sealed value or wrapped key does not decrypt: altered, or moved from elsewhere.
    #[error("tenant {tenant}: {what} does not decrypt (altered, or copied from another tenant)")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// What.
        what: String,
    },
}

/// The marker that starts a sealed value: `sealed:v1:<data key id>:<base64 of nonce and
/// ciphertext>`. No URL or secret starts so (URLs are checked to start with `http`).
const SEALED: &str = "sealed:v1:";

/// Whether `value` is sealed (or a plain URL or secret, from before sealing).
fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED)
}

/// The id of the built-in development key.
const DEVELOPMENT: &str = "development";

/// The platform keys; the first is the current one.
pub struct Keyring {
    keys: Vec<(String, LessSafeKey)>,
}

impl Keyring {
    /// The keys of `config`'s key file, or the development key if it names none.
    pub fn load(config: &SecretsConfig) -> Result<Self, SecretError> {
        if config.key_file.is_empty() {
            return Ok(Self::development());
        }
        let path = Path::new(&config.key_file);
        let bad = |why: String| SecretError::KeyFile(format!("{}: {why}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                return Err(bad(format!(
                    "mode {mode:o} lets every user of the machine read it; make it 600, 400 \
                     or (for a group such as a pod's fsGroup) 440"
                )));
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        Self::parse(&text).map_err(bad)
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, LessSafeKey)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let at = |why: &str| format!("line {}: {why}", n + 1);
            let (id, hex) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| at("expected `<id> <64 hex digits>`"))?;
            let valid_id = (1..=40).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id || id == DEVELOPMENT {
                return Err(at(&format!(
                    "key id {id:?}: 1 to 40 of a-z, 0-9, '-' and '_', not {DEVELOPMENT:?}"
                )));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(at(&format!("key id {id:?} is used twice")));
            }
            let bytes = decode_hex(hex.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| at("the key must be 64 hex digits (32 random bytes)"))?;
            keys.push((id.to_owned(), aes_key(&bytes)));
        }
        if keys.is_empty() {
            return Err("holds no key".into());
        }
        Ok(Self { keys })
    }

    /// The built-in development key: known to anyone who reads this source, so only for a
    /// stack whose stores are all on this machine.
    fn development() -> Self {
        let bytes = ring::digest::digest(
            &ring::digest::SHA256,
            b"roomflow development platform key: loopback only",
        );
        Self {
            keys: vec![(DEVELOPMENT.to_owned(), aes_key(bytes.as_ref()))],
        }
    }

    fn current(&self) -> (&str, &LessSafeKey) {
        let (id, key) = &self.keys[0];
        (id, key)
    }

    fn get(&self, id: &str) -> Option<&LessSafeKey> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }
}

/// A new key file line: `<id> <64 hex digits>`, the id from today's date.
pub fn generate_key_line() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    let id = chrono::Utc::now().format("k%Y%m%d-%H%M%S");
    format!("{id} {}", encode_hex(&bytes))
}

/// The data keys of tenants, unwrapped, by tenant and key id.
#[derive(Default)]
pub struct DataKeys {
    keys: HashMap<(String, String), [u8; 32]>,
    /// Keys there are but that cannot be unwrapped, and why.
    broken: HashMap<(String, String), SecretError>,
    /// Each tenant's newest key id.
    newest: HashMap<String, (u64, String)>,
}

impl DataKeys {
    /// Opens `config`'s sealed values in place; values that are not sealed (written before
    /// sealing existed) are left as they are.
    pub fn open(&self, config: &mut TenantConfig) -> Result<(), SecretError> {
        let tenant = config.tenant.clone();
        for target in &mut config.alert_targets {
            open_field(self, &tenant, "alert_targets.url", &mut target.url)?;
            if let Some(secret) = &mut target.secret {
                open_field(self, &tenant, "alert_targets.secret", secret)?;
            }
        }
        Ok(())
    }

    /// Whether `config` holds no sealed value (nothing to open).
    pub fn is_open(config: &TenantConfig) -> bool {
        !config
            .alert_targets
            .iter()
            .any(|t| is_sealed(&t.url) || t.secret.as_deref().is_some_and(is_sealed))
    }

    fn newest(&self, tenant: &str) -> Option<(&str, LessSafeKey)> {
        let (_, id) = self.newest.get(tenant)?;
        let bytes = self.keys.get(&(tenant.to_owned(), id.clone()))?;
        Some((id, aes_key(bytes)))
    }
}

fn open_field(
    keys: &DataKeys,
    tenant: &str,
    field: &str,
    value: &mut String,
) -> Result<(), SecretError> {
    let Some(rest) = value.strip_prefix(SEALED) else {
        return Ok(());
    };
    let corrupt = || SecretError::Corrupt {
        tenant: tenant.to_owned(),
        what: format!("its sealed {field}"),
    };
    let (key_id, sealed) = rest.split_once(':').ok_or_else(corrupt)?;
    let id = (tenant.to_owned(), key_id.to_owned());
    let bytes = keys
        .keys
        .get(&id)
        .ok_or_else(|| match keys.broken.get(&id) {
            Some(why) => why.clone(),
            None => SecretError::NoDataKey {
                tenant: tenant.to_owned(),
                key_id: key_id.to_owned(),
            },
        })?;
    let plain = open(&aes_key(bytes), &aad(tenant, field), sealed).ok_or_else(corrupt)?;
    *value = String::from_utf8(plain).map_err(|_| corrupt())?;
    Ok(())
}

/// One row of `rf_platform.tenant_keys`.
#[derive(clickhouse::Row, Serialize, Deserialize)]
struct KeyRow {
    tenant: String,
    key_id: String,
    kek_id: String,
    wrapped: String,
    version: u64,
}

/// Seals and opens tenants' secrets; cheap to clone.
#[derive(Clone)]
pub struct Vault {
    keyring: Arc<Keyring>,
    clickhouse: ClickHouseConfig,
    /// Set once the platform's tables are known to exist.
    tables: Arc<tokio::sync::OnceCell<()>>,
}

impl Vault {
    /// A vault with the platform keys of `secrets`, keeping data keys in `clickhouse`'s
    /// `rf_platform.tenant_keys`.
    pub fn new(
        secrets: &SecretsConfig,
        clickhouse: &ClickHouseConfig,
    ) -> Result<Self, SecretError> {
        Ok(Self {
            keyring: Arc::new(Keyring::load(secrets)?),
            clickhouse: clickhouse.clone(),
            tables: Arc::default(),
        })
    }

    /// The data keys of `tenant`, or of every tenant if `None`, unwrapped. A key that
    /// cannot be unwrapped fails only what is sealed under it.
    pub async fn keys(&self, tenant: Option<&TenantId>) -> Result<DataKeys, SecretError> {
        let mut found = DataKeys::default();
        for row in self.rows(tenant).await? {
            let id = (row.tenant.clone(), row.key_id.clone());
            let Some(kek) = self.keyring.get(&row.kek_id) else {
                // Another row may wrap the same key under a key the file holds (rotation).
                found
                    .broken
                    .entry(id)
                    .or_insert(SecretError::NoPlatformKey {
                        tenant: row.tenant,
                        key_id: row.key_id,
                        kek_id: row.kek_id,
                    });
                continue;
            };
            let Some(bytes) = open(kek, &wrap_aad(&row.tenant, &row.key_id), &row.wrapped)
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                found.broken.entry(id).or_insert(SecretError::Corrupt {
                    tenant: row.tenant,
                    what: format!("data key {}", row.key_id),
                });
                continue;
            };
            let newest = found
                .newest
                .entry(row.tenant.clone())
                .or_insert((0, String::new()));
            if row.version >= newest.0 {
                *newest = (row.version, row.key_id.clone());
            }
            found.keys.insert(id, bytes);
        }
        found.broken.retain(|id, _| !found.keys.contains_key(id));
        Ok(found)
    }

    /// Opens `config`'s sealed values in place.
    pub async fn open(&self, config: &mut TenantConfig) -> Result<(), SecretError> {
        if DataKeys::is_open(config) {
            return Ok(());
        }
        let tenant = config.id().map_err(|e| SecretError::Corrupt {
            tenant: config.tenant.clone(),
            what: e.to_string(),
        })?;
        self.keys(Some(&tenant)).await?.open(config)
    }

    /// `config` with its secrets sealed under the tenant's newest data key (one is made
    /// if it has none). Values already sealed stay as they are.
    pub async fn seal(&self, config: &TenantConfig) -> Result<TenantConfig, SecretError> {
        let mut sealed = config.clone();
        let plain = |v: &str| !is_sealed(v);
        let any = sealed
            .alert_targets
            .iter()
            .any(|t| plain(&t.url) || t.secret.as_deref().is_some_and(plain));
        if !any {
            return Ok(sealed);
        }
        let tenant = config.id().map_err(|e| SecretError::Corrupt {
            tenant: config.tenant.clone(),
            what: e.to_string(),
        })?;
        let mut keys = self.keys(Some(&tenant)).await?;
        if keys.newest(tenant.as_str()).is_none() {
            self.make_key(&tenant).await?;
            keys = self.keys(Some(&tenant)).await?;
        }
        let (key_id, key) = keys
            .newest(tenant.as_str())
            .expect("a data key was just made");
        for t in &mut sealed.alert_targets {
            if plain(&t.url) {
                t.url = seal_field(&key, key_id, tenant.as_str(), "alert_targets.url", &t.url);
            }
            if let Some(secret) = t.secret.as_mut().filter(|s| plain(s)) {
                *secret = seal_field(
                    &key,
                    key_id,
                    tenant.as_str(),
                    "alert_targets.secret",
                    secret,
                );
            }
        }
        Ok(sealed)
    }

    /// `plain` sealed under `tenant`'s newest data key (one is made if it has none),
    /// bound to `field`: for secrets kept outside the registry (connector files).
    pub async fn seal_value(
        &self,
        tenant: &TenantId,
        field: &str,
        plain: &str,
    ) -> Result<String, SecretError> {
        let mut keys = self.keys(Some(tenant)).await?;
        if keys.newest(tenant.as_str()).is_none() {
            self.make_key(tenant).await?;
            keys = self.keys(Some(tenant)).await?;
        }
        let (key_id, key) = keys
            .newest(tenant.as_str())
            .expect("a data key was just made");
        Ok(seal_field(&key, key_id, tenant.as_str(), field, plain))
    }

    /// `value` opened, if it is sealed for `tenant` and `field`; as it is otherwise.
    pub async fn open_value(
        &self,
        tenant: &TenantId,
        field: &str,
        value: &str,
    ) -> Result<String, SecretError> {
        let mut value = value.to_owned();
        if is_sealed(&value) {
            let keys = self.keys(Some(tenant)).await?;
            open_field(&keys, tenant.as_str(), field, &mut value)?;
        }
        Ok(value)
    }

    /// Wraps every data key not yet under the current platform key again under it;
    /// returns how many were wrapped again.
    pub async fn rewrap(&self) -> Result<usize, SecretError> {
        let (kek_id, kek) = self.keyring.current();
        let keys = self.keys(None).await?;
        let current: std::collections::HashSet<(String, String)> = self
            .rows(None)
            .await?
            .into_iter()
            .filter(|r| r.kek_id == kek_id)
            .map(|r| (r.tenant, r.key_id))
            .collect();
        let now = now_version();
        let rows: Vec<KeyRow> = keys
            .keys
            .iter()
            .filter(|(id, _)| !current.contains(*id))
            .map(|((tenant, key_id), bytes)| KeyRow {
                tenant: tenant.clone(),
                key_id: key_id.clone(),
                kek_id: kek_id.to_owned(),
                wrapped: seal(kek, &wrap_aad(tenant, key_id), bytes),
                version: now,
            })
            .collect();
        self.insert(&rows).await?;
        let client = rf_sinks::clickhouse::client(&self.clickhouse);
        client
            .query("OPTIMIZE TABLE rf_platform.tenant_keys FINAL")
            .execute()
            .await
            .map_err(ch)?;
        Ok(rows.len())
    }

    async fn make_key(&self, tenant: &TenantId) -> Result<(), SecretError> {
        let mut bytes = [0u8; 32];
        let mut id = [0u8; 8];
        let rng = SystemRandom::new();
        rng.fill(&mut bytes)
            .expect("the system's random source works");
        rng.fill(&mut id).expect("the system's random source works");
        let key_id = encode_hex(&id);
        let (kek_id, kek) = self.keyring.current();
        self.insert(&[KeyRow {
            tenant: tenant.to_string(),
            key_id: key_id.clone(),
            kek_id: kek_id.to_owned(),
            wrapped: seal(kek, &wrap_aad(tenant.as_str(), &key_id), &bytes),
            version: now_version(),
        }])
        .await
    }

    async fn insert(&self, rows: &[KeyRow]) -> Result<(), SecretError> {
        if rows.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        let mut insert = client
            .with_database("rf_platform")
            .insert::<KeyRow>("tenant_keys")
            .await
            .map_err(ch)?;
        for row in rows {
            insert.write(row).await.map_err(ch)?;
        }
        insert.end().await.map_err(ch)
    }

    async fn rows(&self, tenant: Option<&TenantId>) -> Result<Vec<KeyRow>, SecretError> {
        let client = self.client().await?;
        let query = match tenant {
            Some(t) => client
                .query("SELECT ?fields FROM rf_platform.tenant_keys WHERE tenant = ?")
                .bind(t.as_str()),
            None => client.query("SELECT ?fields FROM rf_platform.tenant_keys"),
        };
        query.fetch_all().await.map_err(ch)
    }

    /// A client, the platform's tables made the first time if they are not there.
    async fn client(&self) -> Result<clickhouse::Client, SecretError> {
        let client = rf_sinks::clickhouse::client(&self.clickhouse);
        self.tables
            .get_or_try_init(|| async {
                rf_sinks::clickhouse::create_platform(&client)
                    .await
                    .map_err(ch)?;
                Ok::<_, SecretError>(())
            })
            .await?;
        Ok(client)
    }
}

fn ch(e: clickhouse::error::Error) -> SecretError {
    SecretError::ClickHouse(e.to_string())
}

fn now_version() -> u64 {
    rf_schemas::unix_ms() as u64
}

fn aes_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes make an AES-256 key"))
}

/// What a sealed value is bound to: its tenant and field, so it opens nowhere else.
fn aad(tenant: &str, field: &str) -> String {
    format!("roomflow {tenant} {field}")
}

/// What a wrapped data key is bound to.
fn wrap_aad(tenant: &str, key_id: &str) -> String {
    format!("roomflow data key {tenant} {key_id}")
}

fn seal_field(key: &LessSafeKey, key_id: &str, tenant: &str, field: &str, value: &str) -> String {
    format!(
        "{SEALED}{key_id}:{}",
        seal(key, &aad(tenant, field), value.as_bytes())
    )
}

/// Base64 of a random nonce and the AES-256-GCM ciphertext of `plain` with its tag.
fn seal(key: &LessSafeKey, aad: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system's random source works");
    let mut out = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut out,
    )
    .expect("AES-GCM seals any message this short");
    let mut all = nonce.to_vec();
    all.extend_from_slice(&out);
    B64.encode(all)
}

/// The plaintext of [`seal`]'s output, if it is intact and bound to `aad`.
fn open(key: &LessSafeKey, aad: &str, sealed: &str) -> Option<Vec<u8>> {
    let mut all = B64.decode(sealed).ok()?;
    if all.len() < NONCE_LEN {
        return None;
    }
    let mut ciphertext = all.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&all).ok()?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut ciphertext)
        .ok()?;
    Some(plain.to_vec())
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_schemas::alerts::AlertTarget;

    fn keys_of(tenant: &str, key_id: &str, bytes: [u8; 32]) -> DataKeys {
        let mut keys = DataKeys::default();
        keys.keys
            .insert((tenant.to_owned(), key_id.to_owned()), bytes);
        keys.newest
            .insert(tenant.to_owned(), (1, key_id.to_owned()));
        keys
    }

    fn entry(tenant: &str) -> TenantConfig {
        let mut hook: AlertTarget = "webhook=https://hooks.example.com/h/token".parse().unwrap();
        hook.secret = Some("ab".repeat(32));
        TenantConfig {
            tenant: tenant.into(),
            display_name: tenant.into(),
            industry: String::new(),
            tier: rf_schemas::Tier::Standard,
            region: "eu".into(),
            retention_days: 30,
            alert_targets: vec![hook],
            alert_rules: Vec::new(),
            created_ms: 1,
            updated_ms: 1,
            deleted_ms: None,
            benchmarks_opt_in_ms: None,
            capacity_breach_at: None,
        }
    }

    /// What `Vault::seal` does once it has the tenant's key.
    fn sealed(config: &TenantConfig, keys: &DataKeys) -> TenantConfig {
        let (key_id, key) = keys.newest(&config.tenant).unwrap();
        let mut c = config.clone();
        for t in &mut c.alert_targets {
            t.url = seal_field(&key, key_id, &config.tenant, "alert_targets.url", &t.url);
            let s = t.secret.as_mut().unwrap();
            *s = seal_field(&key, key_id, &config.tenant, "alert_targets.secret", s);
        }
        c
    }

    #[test]
    fn key_files_parse_and_bad_ones_are_named() {
        let line = generate_key_line();
        let ring =
            Keyring::parse(&format!("# rotated\n{line}\nold {}\n", "0f".repeat(32))).unwrap();
        assert_eq!(ring.current().0, line.split(' ').next().unwrap());
        assert!(ring.get("old").is_some() && ring.get("development").is_none());
        for (text, why) in [
            ("", "holds no key"),
            ("k1", "line 1: expected"),
            ("k1 abc", "64 hex digits"),
            (&format!("k1 {}", "zz".repeat(32)), "64 hex digits"),
            (&format!("k1 {0}\nk1 {0}", "00".repeat(32)), "used twice"),
            (
                &format!("development {}", "00".repeat(32)),
                "not \"development\"",
            ),
        ] {
            let e = Keyring::parse(text).err().unwrap();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn key_files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("rf-keys-{}", std::process::id()));
        std::fs::write(&path, generate_key_line()).unwrap();
        let config = SecretsConfig {
            key_file: path.display().to_string(),
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Keyring::load(&config).err().unwrap().to_string();
        assert!(
            e.starts_with("secrets.key_file: ") && e.contains("mode 644"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Keyring::load(&config).is_ok());
        std::fs::remove_file(&path).unwrap();
        let e = Keyring::load(&config).err().unwrap().to_string();
        assert!(e.starts_with("secrets.key_file: "), "{e}");
    }

    #[test]
    fn the_development_key_is_for_loopback_only() {
        let none = SecretsConfig::default();
        assert!(none
            .validate("127.0.0.1:19092,localhost:19093", "http://127.0.0.1:18123")
            .is_ok());
        for (brokers, clickhouse) in [
            ("kafka-0.kafka:9092", "http://127.0.0.1:18123"),
            ("127.0.0.1:19092", "http://clickhouse:8123"),
        ] {
            let e = none.validate(brokers, clickhouse).unwrap_err();
            assert!(e.starts_with("secrets.key_file: must name"), "{e}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_tenant_and_key() {
        let keys = keys_of("acme", "k1", [7; 32]);
        let plain = entry("acme");
        let stored = sealed(&plain, &keys);
        let json = serde_json::to_string(&stored).unwrap();
        assert!(json.contains("sealed:v1:k1:"), "{json}");
        assert!(!json.contains("hooks.example.com") && !json.contains(&"ab".repeat(32)));
        assert!(!DataKeys::is_open(&stored) && DataKeys::is_open(&plain));
        let mut opened = stored.clone();
        keys.open(&mut opened).unwrap();
        assert_eq!(opened, plain);

        // Without the key (erased): nothing opens.
        let mut gone = stored.clone();
        let e = DataKeys::default().open(&mut gone).unwrap_err();
        assert!(matches!(e, SecretError::NoDataKey { .. }), "{e}");

        // Copied into another tenant's entry, under that tenant's key id: refused.
        let mut other = stored.clone();
        other.tenant = "globex".into();
        let e = keys_of("globex", "k1", [7; 32])
            .open(&mut other)
            .unwrap_err();
        assert!(matches!(e, SecretError::Corrupt { .. }), "{e}");

        // A changed byte: refused.
        let mut altered = stored.clone();
        let url = &mut altered.alert_targets[0].url;
        let last = url.pop().unwrap();
        url.push(if last == 'A' { 'B' } else { 'A' });
        assert!(keys.open(&mut altered).is_err());

        // Entries written before sealing existed open as they are.
        let mut legacy = plain.clone();
        keys.open(&mut legacy).unwrap();
        assert_eq!(legacy, plain);
    }

    #[test]
    fn wrapped_keys_open_only_under_their_platform_key() {
        let ring = Keyring::parse(&generate_key_line()).unwrap();
        let (_, kek) = ring.current();
        let wrapped = seal(kek, &wrap_aad("acme", "k1"), &[9; 32]);
        assert_eq!(
            open(kek, &wrap_aad("acme", "k1"), &wrapped),
            Some(vec![9; 32])
        );
        assert_eq!(open(kek, &wrap_aad("acme", "k2"), &wrapped), None);
        let other = Keyring::development();
        assert_eq!(
            open(other.current().1, &wrap_aad("acme", "k1"), &wrapped),
            None
        );
        assert_eq!(open(kek, "x", "not base64!"), None);
    }
}
