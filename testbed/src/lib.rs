//! What the sandbox and the tests run the panel against, kept out of the
//! production library: stand-ins for the outside services, an SMTP server
//! that keeps what it receives, and throwaway PostgreSQL databases.

pub mod sandbox;
pub mod scratch;
pub mod smtp_sink;
