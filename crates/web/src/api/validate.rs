//! Collects field errors so one response reports every problem at once, as DRF does.

use std::collections::BTreeMap;

use crate::error::{ApiError, ApiResult};

/// Accumulated field errors.
#[derive(Default)]
pub(crate) struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    /// Records `result`'s error under `field`.
    pub(crate) fn check(&mut self, field: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(field, message);
        }
    }

    /// Records a message under `field`.
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Takes a required value, recording "This field is required." when absent.
    pub(crate) fn require<T: Clone>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.add(field, "This field is required.");
        }
        value
    }

    /// Records an error unless `value` (when given) fits a 32-bit integer, the column type
    /// Authentik's API documents for orders and thresholds.
    pub(crate) fn int32(&mut self, field: &str, value: Option<i64>) {
        if value.is_some_and(|v| i32::try_from(v).is_err()) {
            self.add(field, "Ensure this value fits a 32-bit integer.");
        }
    }

    /// Parses a duration field, recording the reason it is refused.
    pub(crate) fn duration(&mut self, field: &str, value: &str) {
        if let Err(e) = value.parse::<gatehouse_core::Duration>() {
            self.add(field, e.to_string());
        }
    }

    /// Fails with every recorded error, or succeeds when there are none.
    pub(crate) fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// `value` if given, else `current`.
pub(crate) fn or<T: Clone>(value: &Option<T>, current: &T) -> T {
    value.clone().unwrap_or_else(|| current.clone())
}
