//! Everything about the Vonage Video API and nothing about serving HTTP: the REST client,
//! credentials and their JWTs, session options, session IDs and client tokens.

pub mod archives;
pub mod client;
pub mod credentials;
pub mod error;
pub mod moderation;
pub mod options;
pub mod resilience;
pub mod rest_jwt;
pub mod session_id;
pub mod token;

pub use client::{ClientSettings, VideoClient, VideoError};
pub use credentials::Credentials;
pub use options::{ArchiveMode, ArchiveResolution, MediaMode, SessionOptions};
pub use token::{Role, TokenGrant, TokenIssuer};
