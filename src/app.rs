//! Composition root. (stub: being written)

use crate::cli::Cli;
use crate::error::Result;

pub fn main(_cli: Cli) -> Result<u8> {
    Ok(0)
}
