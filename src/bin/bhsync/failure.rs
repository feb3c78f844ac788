//! One-line failures: what went wrong and what to do, then a non-zero exit code.

use std::process::ExitCode;

/// A failure the command reports and exits on.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// Bad usage or configuration: exit code 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 2 }
    }

    /// Anything else: exit code 1.
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), code: 1 }
    }

    /// Prints `bhsync: MESSAGE` (one line) and returns the exit code.
    pub fn exit(self) -> ExitCode {
        let line = self.message.replace('\n', " ");
        eprintln!("bhsync: {line}");
        ExitCode::from(self.code)
    }
}

/// A clap error as one line (help and version print as clap does and exit 0).
pub fn usage(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = error.print();
        return ExitCode::from(2);
    }
    let text = error.render().to_string();
    // The message proper: the lines before the first blank one (usage and tips follow).
    let first: Vec<&str> = text.lines().take_while(|line| !line.trim().is_empty()).map(str::trim).collect();
    let first = first.join(" ").trim_start_matches("error: ").to_string();
    Failure::usage(format!("{first}; see 'bhsync --help' or 'bhsync COMMAND --help'")).exit()
}

/// Names an IO error the way a person fixes it.
pub fn io_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied",
        std::io::ErrorKind::NotFound => "not found",
        std::io::ErrorKind::AddrInUse => "address in use",
        std::io::ErrorKind::AddrNotAvailable => "address not available on this host",
        std::io::ErrorKind::AlreadyExists => "already exists",
        std::io::ErrorKind::ConnectionRefused => "connection refused",
        _ => "failed",
    }
}
