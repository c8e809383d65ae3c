//! The declarative config file (`gatehouse plan` / `apply`): its format, how secrets are
//! referenced, and the field-level diff between what is stored and what the file wants.
//!
//! The file names objects by natural key (group name, username, slug, provider name) and refers
//! to other objects by those keys too. Omitted fields keep their current value (or the default
//! when the object is new), so a generated OAuth client secret survives every apply. Secrets are
//! never literals: `${VAR}` takes the value from the operator's environment (an error names the
//! variable when it is unset), `${VAR:-}` allows it to be empty.
//!
//! # Layout
//! - [`document`]: the typed file format and parsing with file/line errors.
//! - [`diff`]: overlaying a file entry on a stored object and listing changed fields.
//!
//! Applying lives in `gatehouse-web`, which writes through the same validated paths as the API.

pub mod diff;
pub mod document;

pub use document::{parse, Document, Error};
