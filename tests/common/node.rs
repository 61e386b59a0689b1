//! The JS compat scripts runner, shared with the other integration tests.

#[path = "../support/node.rs"]
mod runner;

use std::time::Duration;

/// Runs `node compat-tests/<script> args...`, returns stdout; panics naming the JS side's failure.
pub fn run_node(script: &str, args: &[&str], timeout: Duration) -> String {
    runner::run(script, args, None, timeout)
}
