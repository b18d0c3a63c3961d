//! The exit status of every subcommand (the table in the README):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | everything asked was done: every input read and recognised, every clip answered |
//! | 1 | something failed: some inputs could not be read or recognised, clips failed or were lost, or the run itself failed (models missing, capture failed, ...) |
//! | 2 | usage: invalid flags or setting values, an unusable config file, a people directory or report destination that does not exist |
//!
//! A usage problem is an error whose chain holds a [`UsageError`]; `main` maps it to 2.

use std::process::ExitCode;

/// Invalid flags, settings, config file or destinations: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// `Err(UsageError)` as an `anyhow` error: `return usage(format!(...))`.
pub fn usage<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(message.into()).into())
}

/// Status 2.
pub fn usage_exit_code() -> ExitCode {
    ExitCode::from(2)
}

/// The exit status of a failed run: 2 for usage problems, 1 for everything else.
pub fn exit_code_of(error: &anyhow::Error) -> ExitCode {
    if error.chain().any(|cause| cause.is::<UsageError>()) {
        usage_exit_code()
    } else {
        ExitCode::FAILURE
    }
}

/// 0 when nothing failed, 1 otherwise.
pub fn failed_if(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_errors_are_found_anywhere_in_the_chain() {
        let error = usage::<()>("--threads must be at least 1").unwrap_err();
        assert_eq!(exit_code_of(&error), ExitCode::from(2));
        let wrapped = usage::<()>("bad")
            .context("while resolving settings")
            .unwrap_err();
        assert_eq!(exit_code_of(&wrapped), ExitCode::from(2));
        assert_eq!(format!("{wrapped:#}"), "while resolving settings: bad");
        let other = anyhow::anyhow!("capture failed");
        assert_eq!(exit_code_of(&other), ExitCode::FAILURE);
        assert_eq!(failed_if(false), ExitCode::SUCCESS);
    }
}
