//! The `wardgate` binary's integration tests, in one test binary: each module runs the
//! built binary against temporary data directories.

mod commands;
mod governance;
mod import;
mod lifecycle;
mod policy;
mod scim;
mod users;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
