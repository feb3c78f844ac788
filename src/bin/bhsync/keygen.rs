//! `bhsync keygen --out FILE`: generates a node identity (an X25519 secret, mode 0600)
//! and prints the node id (its public key) that peers put in their allowlists. An
//! existing file is never overwritten.

use std::path::PathBuf;
use std::process::ExitCode;

use bhsync::wire::identity::{Identity, IdentityError};

use crate::failure::{io_hint, Failure};

/// Options of `bhsync keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (must not exist; `bhsync node` reads
    /// DATA_DIR/identity.key).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: &KeygenArgs) -> Result<ExitCode, Failure> {
    let identity = Identity::generate().map_err(|error| Failure::runtime(format!("cannot generate a key: {error}")))?;
    identity.store_new(&args.out).map_err(|error| match error {
        IdentityError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Failure::runtime(format!(
                "{} already exists; refusing to overwrite a key: choose another --out or remove it",
                args.out.display()
            ))
        }
        IdentityError::Io { source, .. } => Failure::runtime(format!(
            "cannot write {}: {} ({source}); choose a writable path for --out",
            args.out.display(),
            io_hint(&source)
        )),
        other => Failure::runtime(format!("cannot write {}: {other}", args.out.display())),
    })?;
    println!("{}", identity.node_id());
    Ok(ExitCode::SUCCESS)
}
