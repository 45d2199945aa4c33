//! A tenant's producer principal, on brokers with SASL/SCRAM and an authorizer: a SCRAM
//! user `<tenant>-producer` that may write the tenant's readings and rooms topics and do
//! nothing else (no read, no other topic, no group). Its sensors and gateways produce
//! with it; roomflow keeps its own principal.
//!
//! The Rust client does not wrap librdkafka's SCRAM and ACL admin calls, so they are made
//! here through its C API: one call at a time, on a queue of its own, waited for on a
//! blocking thread. The ACLs come first: a broker that cannot restrict the principal (no
//! authorizer) gets no principal at all, since an unrestricted one would be worse than
//! none.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rf_pipelines::KafkaConfig;
use rf_schemas::TenantId;

use crate::JobError;

/// SCRAM iterations of a new credential (Kafka's minimum for SHA-512 is 4,096).
const ITERATIONS: i32 = 8_192;
/// How long the broker may take to answer one admin call.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scram {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl Scram {
    /// The mechanism of `kafka.security.mechanism` if it is a SCRAM one, else SHA-512.
    pub fn of(kafka: &KafkaConfig) -> Self {
        match kafka.security.mechanism.as_str() {
            "SCRAM-SHA-256" => Self::Sha256,
            _ => Self::Sha512,
        }
    }

    /// As SASL names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn native(self) -> rd::rd_kafka_ScramMechanism_t {
        match self {
            Self::Sha256 => rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_256,
            Self::Sha512 => rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
        }
    }
}

/// What `create` did.
#[derive(Debug)]
pub struct Principal {
    /// The SASL user name, `<tenant>-producer`.
    pub user: String,
    /// Its mechanism.
    pub mechanism: Scram,
    /// The new password, shown once; `None` when the user existed and kept its own.
    pub password: Option<String>,
    /// The ACLs it holds, as `kafka-acls.sh` lists them.
    pub acls: Vec<String>,
}

/// One ACL: allow the principal an operation on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// `Topic` or `Cluster`.
    pub resource: Resource,
    /// The topic's name, or `kafka-cluster`.
    pub name: String,
    /// What is allowed.
    pub operation: Operation,
}

/// The resources a producer's ACLs name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A topic, by its literal name.
    Topic,
    /// The cluster.
    Cluster,
}

/// The operations a producer's ACLs allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Produce to a topic.
    Write,
    /// Read a topic's metadata.
    Describe,
    /// Produce idempotently (brokers before 2.8 need it on the cluster).
    IdempotentWrite,
}

impl std::fmt::Display for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.operation {
            Operation::Write => "WRITE",
            Operation::Describe => "DESCRIBE",
            Operation::IdempotentWrite => "IDEMPOTENT_WRITE",
        };
        let resource = match self.resource {
            Resource::Topic => "TOPIC",
            Resource::Cluster => "CLUSTER",
        };
        write!(f, "ALLOW {op} on {resource} {} (LITERAL)", self.name)
    }
}

/// The SASL user of `tenant`'s producers.
pub fn producer_user(tenant: &TenantId) -> String {
    format!("{tenant}-producer")
}

/// What `tenant`'s producers may do: write (and describe) its readings and rooms topics,
/// idempotently. Not its bookings (its calendar connector runs as roomflow), dead-letter
/// or any other topic, and no group: they never read.
pub fn producer_acls(tenant: &TenantId) -> Vec<Acl> {
    let mut acls = Vec::new();
    for topic in [tenant.readings_topic(), tenant.rooms_topic()] {
        for operation in [Operation::Write, Operation::Describe] {
            acls.push(Acl {
                resource: Resource::Topic,
                name: topic.clone(),
                operation,
            });
        }
    }
    acls.push(Acl {
        resource: Resource::Cluster,
        name: "kafka-cluster".into(),
        operation: Operation::IdempotentWrite,
    });
    acls
}

/// Creates `tenant`'s producer principal on the broker of `kafka` (its region's): its
/// ACLs first (creating an ACL that exists changes nothing; where they are refused nothing
/// is created), then the SCRAM user with a new random password unless it exists (it
/// keeps its own).
pub async fn create(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    mechanism: Scram,
) -> Result<Principal, JobError> {
    let admin = admin(kafka)?;
    let user = producer_user(tenant);
    let acls = producer_acls(tenant);
    let (u, a, t) = (user.clone(), acls.clone(), tenant.clone());
    let password = blocking(move || {
        create_acls(&admin, &format!("User:{u}"), &a)?;
        match credential(&admin, &u, mechanism)? {
            Some(true) => Ok(None),
            Some(false) => {
                let password = crate::analyst::password();
                set(&admin, &u, mechanism, &password)?;
                Ok(Some(password))
            }
            None => Err(JobError::Topics(format!(
                "the broker does not describe SCRAM credentials, so whether {u} exists is unknown and its password was not set; its ACLs are in place (set a password with `roomflow tenant producer-principal rotate {t}`)"
            ))),
        }
    })
    .await?;
    Ok(Principal {
        user,
        mechanism,
        password,
        acls: acls.iter().map(ToString::to_string).collect(),
    })
}

/// Gives `tenant`'s producer principal a new random password; the old one stops working
/// for new connections.
pub async fn rotate(
    kafka: &KafkaConfig,
    tenant: &TenantId,
    mechanism: Scram,
) -> Result<String, JobError> {
    let admin = admin(kafka)?;
    let user = producer_user(tenant);
    let tenant = tenant.clone();
    blocking(move || {
        if credential(&admin, &user, mechanism)? == Some(false) {
            return Err(JobError::Invalid(format!(
                "{user} has no {} credential: create it with `roomflow tenant create {tenant} --producer-principal`",
                mechanism.name(),
            )));
        }
        let password = crate::analyst::password();
        set(&admin, &user, mechanism, &password)?;
        Ok(password)
    })
    .await
}

/// What [`remove`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// The credential was deleted.
    Deleted,
    /// There was none.
    Absent,
    /// The broker keeps no SCRAM credentials, so there can be none: its words.
    Unsupported(String),
}

/// Deletes `tenant`'s producer principal's credentials (both mechanisms); its ACLs stay,
/// allowing nothing without the user.
pub async fn remove(kafka: &KafkaConfig, tenant: &TenantId) -> Result<Removed, JobError> {
    let admin = admin(kafka)?;
    let user = producer_user(tenant);
    blocking(move || {
        let mut removed = Removed::Absent;
        for mechanism in [Scram::Sha256, Scram::Sha512] {
            if credential(&admin, &user, mechanism)? == Some(false) {
                continue;
            }
            match alter(&admin, &user, Alteration::Delete(mechanism))? {
                Altered::Done => removed = Removed::Deleted,
                Altered::NotFound => {}
                Altered::Unsupported(why) => return Ok(Removed::Unsupported(why)),
            }
        }
        Ok(removed)
    })
    .await
}

/// Sets `user`'s password.
fn set(admin: &Admin, user: &str, mechanism: Scram, password: &str) -> Result<(), JobError> {
    match alter(admin, user, Alteration::Upsert(mechanism, password))? {
        Altered::Done | Altered::NotFound => Ok(()),
        Altered::Unsupported(why) => Err(JobError::Topics(format!(
            "the broker keeps no SCRAM credentials: {why}"
        ))),
    }
}

type Admin = AdminClient<DefaultClientContext>;

fn admin(kafka: &KafkaConfig) -> Result<Admin, JobError> {
    kafka
        .client_config()
        .create()
        .map_err(|source| JobError::Kafka {
            context: "cannot create an admin client".into(),
            source,
        })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Topics(format!("an admin call failed: {e}")))?
}

/// Whether `user` has a credential of `mechanism`; `None` where the broker's answer does
/// not say (nisshi 0.8.1 describes none of the users asked).
fn credential(admin: &Admin, user: &str, mechanism: Scram) -> Result<Option<bool>, JobError> {
    let name = c_string(user)?;
    let mut users = [name.as_ptr()];
    let op = rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEUSERSCRAMCREDENTIALS;
    // SAFETY: `users` outlives the call, which copies it.
    let event = match call(admin, op, |rk, options, queue| unsafe {
        rd::rd_kafka_DescribeUserScramCredentials(rk, users.as_mut_ptr(), 1, options, queue);
    }) {
        Ok(event) => event,
        Err(r) if r.unsupported => return Ok(None),
        Err(r) => return Err(r.into()),
    };
    let mut described = false;
    // SAFETY: the result and what it points to live as long as `event`.
    unsafe {
        let result = rd::rd_kafka_event_DescribeUserScramCredentials_result(event.0);
        let mut count = 0;
        let descriptions =
            rd::rd_kafka_DescribeUserScramCredentials_result_descriptions(result, &mut count);
        for i in 0..count {
            let d = *descriptions.add(i);
            if CStr::from_ptr(rd::rd_kafka_UserScramCredentialsDescription_user(d))
                != name.as_c_str()
            {
                continue;
            }
            let error = rd::rd_kafka_UserScramCredentialsDescription_error(d);
            match code(error) {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => described = true,
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND => {
                    return Ok(Some(false))
                }
                _ => return Err(refused("describing SCRAM credentials", user, error)),
            }
            let infos = rd::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo_count(d);
            for j in 0..infos {
                let info = rd::rd_kafka_UserScramCredentialsDescription_scramcredentialinfo(d, j);
                if rd::rd_kafka_ScramCredentialInfo_mechanism(info) == mechanism.native() {
                    return Ok(Some(true));
                }
            }
        }
    }
    Ok(described.then_some(false))
}

/// A change to a user's SCRAM credential.
enum Alteration<'a> {
    /// Set this password (a random salt).
    Upsert(Scram, &'a str),
    /// Delete the credential.
    Delete(Scram),
}

/// What an alteration did.
enum Altered {
    Done,
    /// There was no credential to delete (Kafka answers RESOURCE_NOT_FOUND).
    NotFound,
    /// The broker keeps no SCRAM credentials (nisshi on memory storage, brokers before
    /// 2.7): the broker's words.
    Unsupported(String),
}

/// Makes `alteration`.
fn alter(admin: &Admin, user: &str, alteration: Alteration<'_>) -> Result<Altered, JobError> {
    let name = c_string(user)?;
    // SAFETY: librdkafka copies the name and password; a null salt makes it draw a
    // random one.
    let (native, doing) = unsafe {
        match alteration {
            Alteration::Upsert(mechanism, password) => (
                rd::rd_kafka_UserScramCredentialUpsertion_new(
                    name.as_ptr(),
                    mechanism.native(),
                    ITERATIONS,
                    password.as_ptr(),
                    password.len(),
                    std::ptr::null(),
                    0,
                ),
                "setting a SCRAM credential",
            ),
            Alteration::Delete(mechanism) => (
                rd::rd_kafka_UserScramCredentialDeletion_new(name.as_ptr(), mechanism.native()),
                "deleting a SCRAM credential",
            ),
        }
    };
    let mut alterations = [native];
    let op = rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS;
    // SAFETY: `alterations` outlives the call, which copies them.
    let event = call(admin, op, |rk, options, queue| unsafe {
        rd::rd_kafka_AlterUserScramCredentials(rk, alterations.as_mut_ptr(), 1, options, queue);
    });
    // SAFETY: created above, destroyed once.
    unsafe { rd::rd_kafka_UserScramCredentialAlteration_destroy(native) };
    let event = match event {
        Ok(event) => event,
        Err(r) if r.unsupported => return Ok(Altered::Unsupported(r.message)),
        Err(r) => return Err(r.into()),
    };
    // SAFETY: the responses live as long as `event`.
    unsafe {
        let result = rd::rd_kafka_event_AlterUserScramCredentials_result(event.0);
        let mut count = 0;
        let responses = rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut count);
        if count != 1 {
            return Err(JobError::Topics(format!(
                "{doing} for {user}: the broker answered {count} results for one change"
            )));
        }
        for i in 0..count {
            let error =
                rd::rd_kafka_AlterUserScramCredentials_result_response_error(*responses.add(i));
            match code(error) {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {}
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND => {
                    return Ok(Altered::NotFound)
                }
                c if unsupported(c) => {
                    let message = CStr::from_ptr(rd::rd_kafka_error_string(error));
                    return Ok(Altered::Unsupported(message.to_string_lossy().into_owned()));
                }
                _ => return Err(refused(doing, user, error)),
            }
        }
    }
    Ok(Altered::Done)
}

fn create_acls(admin: &Admin, principal: &str, acls: &[Acl]) -> Result<(), JobError> {
    let principal = c_string(principal)?;
    let host = c_string("*")?;
    let mut bindings = Vec::with_capacity(acls.len());
    for acl in acls {
        let name = c_string(&acl.name)?;
        let resource = match acl.resource {
            Resource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            Resource::Cluster => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
        };
        let operation = match acl.operation {
            Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
            Operation::Describe => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE,
            Operation::IdempotentWrite => {
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE
            }
        };
        let mut errstr = [0 as std::ffi::c_char; 256];
        // SAFETY: librdkafka copies the strings; the binding is destroyed below.
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                resource,
                name.as_ptr(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                principal.as_ptr(),
                host.as_ptr(),
                operation,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if binding.is_null() {
            // SAFETY: librdkafka wrote a terminated string.
            let why = unsafe { CStr::from_ptr(errstr.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            destroy_bindings(&mut bindings);
            return Err(JobError::Invalid(format!("ACL {acl}: {why}")));
        }
        bindings.push(binding);
    }
    let event = call(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
        |rk, options, queue| unsafe {
            rd::rd_kafka_CreateAcls(rk, bindings.as_mut_ptr(), bindings.len(), options, queue);
        },
    );
    destroy_bindings(&mut bindings);
    let event = event?;
    // SAFETY: the results live as long as `event`.
    unsafe {
        let result = rd::rd_kafka_event_CreateAcls_result(event.0);
        let mut count = 0;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
        // An answer short of results is no proof the principal is restricted.
        if count != acls.len() {
            return Err(JobError::Topics(format!(
                "the broker answered {count} of {} ACL creations; no principal was created",
                acls.len()
            )));
        }
        for (i, acl) in acls.iter().enumerate() {
            let error = rd::rd_kafka_acl_result_error(*results.add(i));
            if code(error) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(refused(&format!("creating the ACL {acl}"), "", error));
            }
        }
    }
    Ok(())
}

fn destroy_bindings(bindings: &mut Vec<*mut rd::rd_kafka_AclBinding_t>) {
    for b in bindings.drain(..) {
        // SAFETY: created by rd_kafka_AclBinding_new, destroyed once.
        unsafe { rd::rd_kafka_AclBinding_destroy(b) };
    }
}

/// An admin event, destroyed when dropped.
struct Event(*mut rd::rd_kafka_event_t);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: polled from a queue, destroyed once.
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}

/// Makes one admin call on a queue of its own and waits for its result event; an error of
/// the whole request (the broker unreachable, a timeout, an unsupported call) is returned.
fn call(
    admin: &Admin,
    op: rd::rd_kafka_admin_op_t,
    f: impl FnOnce(*mut rd::rd_kafka_t, *const rd::rd_kafka_AdminOptions_t, *mut rd::rd_kafka_queue_t),
) -> Result<Event, Refusal> {
    let rk = admin.inner().native_ptr();
    let timeout = i32::try_from(TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` outlives the queue and options, both destroyed here; the event is
    // owned by the returned `Event`.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let options = rd::rd_kafka_AdminOptions_new(rk, op);
        let mut errstr = [0 as std::ffi::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            timeout,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        f(rk, options, queue);
        let event = rd::rd_kafka_queue_poll(queue, timeout + 5_000);
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_queue_destroy(queue);
        if event.is_null() {
            return Err(Refusal {
                unsupported: false,
                message: format!("the broker did not answer within {} s", TIMEOUT.as_secs()),
            });
        }
        let event = Event(event);
        let code = rd::rd_kafka_event_error(event.0);
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let why = CStr::from_ptr(rd::rd_kafka_event_error_string(event.0)).to_string_lossy();
            return Err(Refusal {
                unsupported: unsupported(code),
                message: why.into_owned(),
            });
        }
        Ok(event)
    }
}

/// A whole admin request that failed.
struct Refusal {
    /// The broker does not support the call (or, for SCRAM, keeps no credentials).
    unsupported: bool,
    message: String,
}

impl From<Refusal> for JobError {
    fn from(r: Refusal) -> Self {
        JobError::Topics(r.message)
    }
}

fn unsupported(code: rd::rd_kafka_resp_err_t) -> bool {
    use rd::rd_kafka_resp_err_t::*;
    matches!(
        code,
        RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE | RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION
    )
}

/// The code of a librdkafka error; null is no error.
unsafe fn code(error: *const rd::rd_kafka_error_t) -> rd::rd_kafka_resp_err_t {
    if error.is_null() {
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    } else {
        // SAFETY: a valid error, as the caller holds its result.
        unsafe { rd::rd_kafka_error_code(error) }
    }
}

/// The broker's refusal, with what was being done; a broker without an authorizer is
/// named as such.
unsafe fn refused(doing: &str, user: &str, error: *const rd::rd_kafka_error_t) -> JobError {
    // SAFETY: a valid error, as the caller holds its result.
    let (code, message) = unsafe {
        (
            rd::rd_kafka_error_code(error),
            CStr::from_ptr(rd::rd_kafka_error_string(error))
                .to_string_lossy()
                .into_owned(),
        )
    };
    let user = if user.is_empty() {
        String::new()
    } else {
        format!(" for {user}")
    };
    let hint = match code {
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_SECURITY_DISABLED => {
            ": the broker has no authorizer, so it cannot restrict a principal; no principal was created (configure an authorizer, or provision without --producer-principal)"
        }
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED => {
            ": roomflow's own principal may not alter the cluster's users and ACLs (it needs ALTER on the cluster)"
        }
        _ => "",
    };
    let message = message.trim_end_matches('.');
    JobError::Topics(format!("{doing}{user}: {message}{hint}"))
}

fn c_string(s: &str) -> Result<CString, JobError> {
    CString::new(s).map_err(|_| JobError::Invalid(format!("{s:?} holds a NUL byte")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_may_write_its_readings_and_rooms_and_nothing_else() {
        let acme = TenantId::parse("acme").unwrap();
        let acls: Vec<String> = producer_acls(&acme)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            acls,
            [
                "ALLOW WRITE on TOPIC occupancy.acme (LITERAL)",
                "ALLOW DESCRIBE on TOPIC occupancy.acme (LITERAL)",
                "ALLOW WRITE on TOPIC rooms.acme (LITERAL)",
                "ALLOW DESCRIBE on TOPIC rooms.acme (LITERAL)",
                "ALLOW IDEMPOTENT_WRITE on CLUSTER kafka-cluster (LITERAL)",
            ]
        );
        assert_eq!(producer_user(&acme), "acme-producer");
    }
}
