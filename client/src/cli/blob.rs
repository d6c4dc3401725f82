//! `keyshare sign-blob` and `keyshare verify-blob`: detached signatures
//! over files (format: [`keyshare_client::blob`], `docs/ci.md`).

use std::path::{Path, PathBuf};

use clap::Args;
use time::OffsetDateTime;

use keyshare_client::blob;
use keyshare_policy::client::{verify_target, Config, Lookup, Request, Response, Updater};
use keyshare_policy::sign::InMemorySigner;
use keyshare_policy::trust::{
    NamespaceTrust, Namespaces, Peers, Revocations, TrustSet, NAMESPACES_PATH, PEERS_PATH,
    REVOCATIONS_PATH,
};

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
    /// The keyshare server (or any static copy of its repository).
    #[arg(long, env = "KEYSHARE_SERVER", value_name = "URL")]
    server: String,
    /// The organization's pinned root metadata (e.g. `1.root.json`, checked
    /// against the root hash from `keyshare-server init`).
    #[arg(long, value_name = "FILE")]
    root: PathBuf,
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
    let set = trust_set_from_server(&a.server, &read(&a.root)?, now)?;
    let decision = blob::verify(&set, &a.artifact, &bytes, &sig, now)
        .map_err(|e| Error::Failed(e.to_string()))?;
    if decision.is_trusted() {
        output::text(&decision.to_string());
        Ok(())
    } else {
        Err(Error::Failed(decision.to_string()))
    }
}

/// The trust documents of `server`, fetched and verified now with the TUF
/// client workflow from `root` (nothing is cached between runs). The
/// verifier's local trust cache replaces this when it lands.
fn trust_set_from_server(
    server: &str,
    root: &[u8],
    now: OffsetDateTime,
) -> Result<TrustSet, Error> {
    let base = server.trim_end_matches('/').to_owned();
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .redirects(0)
        .build();
    let get = |path: String, max: u64| -> Response {
        let Ok(r) = agent.get(&format!("{base}/{path}")).call() else {
            return Response::NotFound;
        };
        let mut bytes = Vec::new();
        match std::io::Read::read_to_end(
            &mut std::io::Read::take(r.into_reader(), max.saturating_add(1)),
            &mut bytes,
        ) {
            Ok(_) => Response::Bytes(bytes),
            Err(_) => Response::NotFound,
        }
    };
    let fetch = |req: &Request| {
        if req.is_local() {
            Response::NotFound
        } else {
            get(format!("metadata/{}", req.remote_name()), req.max_length())
        }
    };
    let tuf = |e: keyshare_policy::Error| Error::Failed(format!("{base}: {e}"));
    let mut updater = Updater::new(root, now, Config::default()).map_err(tuf)?;
    updater.refresh_with(fetch).map_err(tuf)?;
    let mut target = |path: &str| -> Result<Option<Vec<u8>>, Error> {
        match updater.find_target_with(path, fetch).map_err(tuf)? {
            Lookup::Found { target_file, .. } => {
                let name = updater.target_remote_name(path, &target_file);
                let Response::Bytes(bytes) = get(format!("targets/{name}"), target_file.length)
                else {
                    return Err(Error::Failed(format!("{base}: cannot fetch {path}")));
                };
                verify_target(&target_file, path, &bytes).map_err(tuf)?;
                Ok(Some(bytes))
            }
            Lookup::NotFound => Ok(None),
        }
    };
    let index = match target(NAMESPACES_PATH)? {
        Some(b) => Namespaces::from_slice(&b).map_err(tuf)?,
        None => Namespaces::default(),
    };
    let revocations = match target(REVOCATIONS_PATH)? {
        Some(b) => Revocations::from_slice(&b).map_err(tuf)?,
        None => Revocations::default(),
    };
    let peers = match target(PEERS_PATH)? {
        Some(b) => Peers::from_slice(&b).map_err(tuf)?,
        None => Peers::default(),
    };
    let mut docs = Vec::new();
    for entry in &index.namespaces {
        let path = entry.name.target_path();
        if let Some(b) = target(&path)? {
            docs.push(NamespaceTrust::from_target(&path, &b).map_err(tuf)?);
        }
    }
    TrustSet::new(index, docs, revocations, peers).map_err(tuf)
}
