//! AWS Lambda entry point for the rollcall recognition function.
//!
//! Not implemented yet (tracked by the "Recognition service" issue): the lambda_runtime binary, its
//! packaging and the infrastructure template land here. This crate exports nothing until then.
