//! Everything about the Vonage Video API and nothing about serving HTTP: the REST client,
//! credentials and their JWTs, session options, session IDs and client tokens.

pub(crate) mod archives;
pub(crate) mod client;
pub(crate) mod credentials;
pub(crate) mod error;
pub(crate) mod moderation;
pub(crate) mod options;
pub(crate) mod resilience;
pub(crate) mod rest_jwt;
pub mod session_id;
pub mod token;

pub(crate) use client::{ClientSettings, VideoClient, VideoError};
pub use credentials::Credentials;
pub(crate) use options::{ArchiveMode, ArchiveResolution, MediaMode, SessionOptions};
pub use token::Role;
pub(crate) use token::{TokenGrant, TokenIssuer};
