//! A small blocking client for a Confluent-compatible schema registry.

use std::time::Duration;

use serde::Deserialize;

/// A failed registry call; [`RegistryError::is_retryable`] says whether waiting can help.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry did not answer (down, refused, timed out).
    #[error("schema registry at {url} unreachable: {reason}")]
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The registry has no schema with this id.
    #[error("schema id {0} is not registered")]
    UnknownId(u32),
    /// The registry refused the request, with its explanation.
    #[error("schema registry refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The registry's own message.
        message: String,
    },
}

impl RegistryError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => *status >= 500,
            Self::UnknownId(_) => false,
        }
    }
}

/// A blocking client, cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl RegistryClient {
    /// A client for the registry at `url` (e.g. `http://127.0.0.1:18081`).
    pub fn new(url: &str, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            base: url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The schema text registered under `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let resp = self
            .agent
            .get(format!("{}/schemas/ids/{id}", self.base))
            .call()
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => Ok(self.json::<SchemaBody>(resp)?.schema),
            404 => Err(RegistryError::UnknownId(id)),
            _ => Err(self.refused(resp)),
        }
    }

    /// Registers `schema` under `subject` and returns its id; an incompatible change is
    /// refused with the registry's explanation.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let resp = self
            .agent
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .send_json(serde_json::json!({ "schema": schema }))
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => Ok(self.json::<IdBody>(resp)?.id),
            _ => Err(self.refused(resp)),
        }
    }

    /// The versions registered under `subject`, oldest first; none for a new subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let resp = self
            .agent
            .get(format!("{}/subjects/{subject}/versions", self.base))
            .call()
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => self.json(resp),
            404 => Ok(Vec::new()),
            _ => Err(self.refused(resp)),
        }
    }

    /// The schema text of `version` of `subject`.
    pub fn schema_at(&self, subject: &str, version: u32) -> Result<String, RegistryError> {
        let resp = self
            .agent
            .get(format!(
                "{}/subjects/{subject}/versions/{version}",
                self.base
            ))
            .call()
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => Ok(self.json::<SchemaBody>(resp)?.schema),
            _ => Err(self.refused(resp)),
        }
    }

    /// Deletes `subject` with every version: first softly (as Confluent's registry requires),
    /// then permanently. A subject that is not there is no error.
    pub fn delete_subject(&self, subject: &str) -> Result<(), RegistryError> {
        for query in ["", "?permanent=true"] {
            let resp = self
                .agent
                .delete(format!("{}/subjects/{subject}{query}", self.base))
                .call()
                .map_err(|e| self.unreachable(e))?;
            match resp.status().as_u16() {
                200 | 404 => {}
                _ => return Err(self.refused(resp)),
            }
        }
        Ok(())
    }

    /// Sets the compatibility level the registry itself enforces for `subject`
    /// (`BACKWARD`, `NONE`, …).
    pub fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let resp = self
            .agent
            .put(format!("{}/config/{subject}", self.base))
            .send_json(serde_json::json!({ "compatibility": level }))
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            _ => Err(self.refused(resp)),
        }
    }

    fn unreachable(&self, e: ureq::Error) -> RegistryError {
        RegistryError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: ureq::http::Response<ureq::Body>,
    ) -> Result<T, RegistryError> {
        resp.into_body()
            .read_json()
            .map_err(|e| RegistryError::Refused {
                status: 200,
                message: format!("unexpected response body: {e}"),
            })
    }

    fn refused(&self, resp: ureq::http::Response<ureq::Body>) -> RegistryError {
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.message)
            .unwrap_or(text);
        RegistryError::Refused { status, message }
    }
}
