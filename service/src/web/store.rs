//! The web app's sessions in Redis (`rf:_session:<id>`, no tenant's prefix can be that:
//! tenant ids have no `_`): shared by every `serve` process of the region, kept across
//! restarts, and gone by themselves when they expire, so their memory is bounded by the
//! sessions in use.

use async_trait::async_trait;
use redis::AsyncCommands;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result, SessionStore};

/// Sessions in one Redis.
#[derive(Clone)]
pub(crate) struct RedisStore {
    redis: redis::aio::ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

impl RedisStore {
    pub(crate) fn new(redis: redis::aio::ConnectionManager) -> Self {
        Self { redis }
    }
}

fn key(id: &Id) -> String {
    format!("rf:_session:{id}")
}

/// Milliseconds until the record expires (at least 1).
fn ttl_ms(record: &Record) -> u64 {
    let left = record.expiry_date - tower_sessions::cookie::time::OffsetDateTime::now_utc();
    left.whole_milliseconds().clamp(1, i128::from(u32::MAX)) as u64
}

fn backend(e: redis::RedisError) -> Error {
    Error::Backend(e.to_string())
}

impl RedisStore {
    /// Writes `record`; `only_new`: only if its id is not taken. Whether it was written.
    async fn put(&self, record: &Record, only_new: bool) -> Result<bool> {
        let json = serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key(&record.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms(record));
        if only_new {
            cmd.arg("NX");
        }
        let mut redis = self.redis.clone();
        let answer: Option<String> = cmd.query_async(&mut redis).await.map_err(backend)?;
        Ok(answer.is_some())
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // A new id until one is free: ids are 128 random bits, so at most once in practice.
        while !self.put(record, true).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.put(record, false).await.map(drop)
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let mut redis = self.redis.clone();
        let json: Option<String> = redis.get(key(id)).await.map_err(backend)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        let mut redis = self.redis.clone();
        let _: u64 = redis.del(key(id)).await.map_err(backend)?;
        Ok(())
    }
}
