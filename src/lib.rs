//! changebot: change records, approvals, maintenance windows and releases, driven from chat
//! and GitHub. See ARCHITECTURE.md for the map.

pub mod chat;
pub mod clock;
pub mod config;
pub mod domain;
pub mod store;
pub mod workflow;
pub mod app;
pub mod console;
pub mod http;
