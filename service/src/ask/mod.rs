//! Questions in plain language: question → intent → typed plan → execution through the
//! service's own query operations → a sentence or a short table → a fact check that
//! every number said is in the executed result. See `docs/ask.md`.

pub mod catalog;
pub mod dates;
pub mod eval;
pub mod parse;
pub mod plan;

pub use catalog::Catalog;
pub use parse::{parse, Understood};
pub use plan::{Op, Plan};
