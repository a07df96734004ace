//! StreamIt Studio: the desktop broadcasting studio (`app`) and its headless QA command line
//! (`cli`). A library so the binary and the GUI tests drive the same code.

pub mod app;
pub mod cli;
