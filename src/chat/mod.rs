//! The chat surface shared by console, `changebot chat`, Discord and GitHub comments:
//! grammar and parser, help, and the renderer that turns outcomes into replies.

pub mod grammar;
pub mod help;
mod parser;
pub mod render;

pub use grammar::{Command, ParseError, TimeSpec, parse};
