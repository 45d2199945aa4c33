//! The alert sink: an alert rendered for Slack (blocks), Microsoft Teams (an Adaptive
//! Card) or a generic HTTPS webhook (JSON signed with HMAC-SHA256 over a timestamp), sent
//! with a timeout and retried with backoff.

pub mod deliver;
pub mod guard;
pub mod message;
pub mod outbox;

pub use deliver::{Delivery, Outcome, Retries, Target};
pub use guard::Network;
pub use message::{signature, Alert, BookingWeek, OfficeWeek};
pub use outbox::OutboxSink;
