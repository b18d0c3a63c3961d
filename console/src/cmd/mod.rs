//! One module per subcommand.

pub mod attendance;
#[cfg(feature = "aws")]
pub mod aws;
pub mod bench;
pub mod class;
pub mod console;
pub mod demo;
pub mod enroll;
pub mod eval;
pub mod identify;
pub mod models;
pub mod people;
pub mod scan;
pub mod session;
pub mod spool;
#[cfg(feature = "aws")]
pub mod worker;
