//! `keyshare sign-blob` and `keyshare verify-blob`: detached signatures
//! over files (format: [`keyshare_client::blob`], `docs/ci.md`).

use std::path::{Path, PathBuf};

use clap::Args;
use time::OffsetDateTime;

use keyshare_client::blob;
use keyshare_policy::sign::InMemorySigner;

use super::{output, Error};

/// `keyshare sign-blob`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The private key (PKCS#8 PEM), e.g. from `keyshare ci request`.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Where to write the signature (default: FILE.sig; must not exist).
    #[arg(long, value_name = "SIG")]
    signature: Option<PathBuf>,
    /// The file to sign.
    file: PathBuf,
}

/// `keyshare verify-blob`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The artifact name the file is published as (decides the namespace).
    artifact: String,
    /// The file.
    file: PathBuf,
    /// Its signature (from `keyshare sign-blob`).
    #[arg(long, value_name = "SIG")]
    signature: PathBuf,
    /// Refresh the trust state from the server first (`keyshare refresh`);
    /// without it the cached state is used, verified again, offline.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    common: super::verify::Common,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn sign(a: SignArgs) -> Result<(), Error> {
    let key = InMemorySigner::from_pkcs8_pem(&read(&a.key)?)
        .map_err(|e| Error::Input(format!("{}: {e}", a.key.display())))?;
    let bytes = read(&a.file)?;
    let sig = blob::sign(&key, &bytes, OffsetDateTime::now_utc())
        .map_err(|e| Error::Input(e.to_string()))?;
    let out = a.signature.unwrap_or_else(|| {
        let mut p = a.file.clone().into_os_string();
        p.push(".sig");
        p.into()
    });
    let json = serde_json::to_vec_pretty(&sig).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
        .map_err(|e| Error::Input(format!("cannot write {}: {e}", out.display())))?;
    output::text(&format!("signature: {}", out.display()));
    Ok(())
}

pub(crate) fn verify(a: VerifyArgs) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc();
    let bytes = read(&a.file)?;
    let sig = read(&a.signature)?;
    let verifier = a.common.verifier()?;
    let set = if a.refresh {
        verifier.refresh()?
    } else {
        verifier.trust_state()?
    }
    .trust_set;
    let decision = blob::verify(&set, &a.artifact, &bytes, &sig, now)
        .map_err(|e| Error::Failed(e.to_string()))?;
    if decision.is_trusted() {
        output::text(&decision.to_string());
        Ok(())
    } else {
        Err(Error::Failed(decision.to_string()))
    }
}
