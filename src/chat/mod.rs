//! The chat surface shared by console, `changebot chat`, Discord and GitHub comments:
//! the grammar defined once as data (`spec`), its parser, help, and the renderer that turns
//! outcomes into replies.

pub mod envelope;
pub mod grammar;
pub mod help;
mod parser;
pub mod render;
pub mod spec;

pub use grammar::{Command, ParseError, TimeSpec, parse, parse_words};
