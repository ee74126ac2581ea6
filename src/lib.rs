//! changebot: change records, approvals, maintenance windows and releases, driven from chat
//! and GitHub. See ARCHITECTURE.md for the map.

pub mod app;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod deploy;
pub mod discord;
pub mod domain;
pub mod github;
pub mod health;
pub mod holder;
pub mod http;
pub mod http_server;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod report;
pub mod scheduler;
pub mod startup;
pub mod store;
pub mod web;
pub mod workflow;
