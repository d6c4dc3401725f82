//! `keyshare-server init`: a new repository in a data directory.

use std::fs;
use std::io::Write;
use std::path::Path;

use keyshare_policy::trust::bin_bits_for_count;
use openssl::sha::sha256;
use time::OffsetDateTime;

use super::{init_data_dir, io_at, open_store, report, CliError, OutputFormat};
use crate::config::{self, Config, Flags};
use crate::data_dir::{DataDir, DB_NAME};
use crate::keys;
use crate::publisher::Publisher;
use crate::store::TokenKind;

/// `init`: creates a new repository in `dir` and writes, to `out`, the
/// pinned root hash and the org-admin token (shown only here).
///
/// The directory is created with mode 0700 (an existing one loses group
/// and other access) and locked. Refuses a directory that another
/// keyshare-server process holds, or that already holds a database, a
/// `keys/` directory or a replica. A `keyshare.toml` already there is kept
/// and used (so the expiries can be chosen before the first publish);
/// otherwise the defaults are written. If anything fails, what `init`
/// created is removed again.
pub fn init(dir: &Path, root: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    init_with_bins(dir, root, 256, OutputFormat::Text, out)
}

/// `init --bins N [--output json]`: the same with `bins` hashed bins (256,
/// 1024 or 4096), the result printed as `format` asks.
pub fn init_with_bins(
    dir: &Path,
    root: Option<&Path>,
    bins: u64,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let bin_bits = bin_bits_for_count(bins).ok_or_else(|| {
        CliError::Other(format!(
            "--bins {bins}: a repository has 256, 1024 or 4096 hashed bins"
        ))
    })?;
    init_data_dir(dir, "init", || {
        init_locked(dir, root, bin_bits, format, out)
    })
}

fn init_locked(
    dir: &Path,
    root: Option<&Path>,
    bin_bits: u32,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let layout = DataDir::new(dir);
    let db = layout.db();
    let keys_dir = layout.keys();
    let config_path = layout.config();
    for existing in [&db, &keys_dir, &layout.replica()] {
        if existing.exists() {
            return Err(CliError::Other(format!(
                "{} already holds a repository ({} exists); refusing to overwrite it",
                dir.display(),
                existing.display()
            )));
        }
    }
    let tsa_dir = layout.tsa();
    let had_tsa_dir = tsa_dir.exists();
    let wrote_config = !config_path.exists();
    if wrote_config {
        keyshare_fsio::write_new(&config_path, config::DEFAULT_FILE.as_bytes(), 0o644)?;
    }
    let mut made_root = None;
    let result = init_repository(dir, &db, root, bin_bits, format, out, &mut made_root);
    if result.is_err() {
        // Best effort: leave the directory, and a PostgreSQL database, as
        // init found them (a database another init filled meanwhile is
        // left alone: its root is not the one this init made).
        if let Some(root_sha256) = &made_root {
            forget_in_database(dir, &db, root_sha256);
        }
        let _ = fs::remove_dir_all(&keys_dir);
        if !had_tsa_dir {
            let _ = fs::remove_dir_all(&tsa_dir);
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(dir.join(format!("{DB_NAME}{suffix}")));
        }
        if wrote_config {
            let _ = fs::remove_file(&config_path);
        }
    }
    result
}

/// Drops what a failed `init` left in a PostgreSQL store (the repository
/// whose root has SHA-256 `root_sha256`); logs what it cannot.
fn forget_in_database(dir: &Path, db: &Path, root_sha256: &str) {
    let Ok(config) = Config::load(dir, &Flags::default()) else {
        return;
    };
    if config.store_url.is_none() {
        return;
    }
    let forgotten = open_store(db, &config)
        .map_err(|e| e.to_string())
        .and_then(|mut store| {
            store
                .forget_failed_init(root_sha256)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = forgotten {
        tracing::error!(error = %e, "init failed, and what it wrote to the database could not be removed");
    }
}

/// `made_root` gets the SHA-256 of the root once the repository is
/// published, so that a failure after it can undo it.
fn init_repository(
    dir: &Path,
    db: &Path,
    root: Option<&Path>,
    bin_bits: u32,
    format: OutputFormat,
    out: &mut dyn Write,
    made_root: &mut Option<String>,
) -> Result<(), CliError> {
    let config = Config::load(dir, &Flags::default())?;
    let now = OffsetDateTime::now_utc();
    let publisher = match root {
        // The embedded default: a local root key, threshold 1.
        None => {
            let (online, root_key) = keys::init_online(&config.keys, dir)?;
            let store = open_store(db, &config)?;
            Publisher::init_with_bins(
                store,
                online,
                &[root_key],
                1,
                config.repo_options(),
                bin_bits,
                now,
            )?
        }
        // A root from the offline ceremony; no root key on this machine.
        Some(path) => {
            let bytes = fs::read(path).map_err(io_at(path))?;
            let online = keys::init_online_for_root(&config.keys, dir)?;
            let store = open_store(db, &config)?;
            Publisher::init_with_root(store, online, &bytes, config.repo_options(), bin_bits, now)?
        }
    };
    let root_hash = publisher
        .file("metadata/1.root.json")
        .map(|f| hex::encode(sha256(&f.bytes)))
        .ok_or_else(|| CliError::Other("init published no metadata/1.root.json".into()))?;
    *made_root = Some(root_hash.clone());
    // The CI secret (nonces, principals), whether or not `[ci]` is set yet.
    keys::generate_ci_secret(&DataDir::new(dir).keys())?;
    // The timestamp authority: its key, the organization's TSA CA and the
    // TSA certificate (docs/tsa.md).
    let tsa = if config.tsa.enabled {
        let (material, made) = crate::tsa::setup::prepare(
            &config.tsa,
            config.keys.pin_file.as_deref(),
            dir,
            now,
            true,
        )
        .map_err(|e| CliError::Other(e.to_string()))?;
        crate::tsa::audit_setup(&publisher, &material, made, &config.tsa, now)?;
        crate::tsa::trust_own(&publisher, &material, now)?;
        Some(material.chain_path)
    } else {
        None
    };
    let token = publisher.create_token(
        "system",
        TokenKind::OrgAdmin,
        Some("created by init".into()),
        now,
    )?;
    let tsa_ca = tsa
        .as_ref()
        .map(|_| DataDir::new(dir).tsa().join(crate::data_dir::TSA_CA_CERT));
    let value = serde_json::json!({
        "data_dir": dir,
        "root_sha256": root_hash,
        "root_version": 1,
        "bins": 1u64 << bin_bits,
        "timestamp_authority": tsa.as_ref().map(|chain| serde_json::json!({
            "ca_certificate": tsa_ca,
            "certificate_chain": chain,
        })),
        "token": {"id": token.token.id, "secret": token.secret.expose()},
    });
    report(out, format, &value, || {
        let mut lines = vec![
            format!("initialized a keyshare repository in {}", dir.display()),
            format!("root sha256: {root_hash}"),
        ];
        if let (Some(chain), Some(ca)) = (&tsa, &tsa_ca) {
            lines.push(format!(
                "timestamp authority: CA certificate {}, TSA certificate chain {}",
                ca.display(),
                chain.display()
            ));
        }
        lines.push(format!(
            "org-admin token (id {}); it will not be shown again:",
            token.token.id
        ));
        lines.push(token.secret.expose().to_owned());
        lines.join("\n")
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn init_writes_a_configuration_that_loads_with_a_ci_stub_to_uncomment() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        init(&dir, None, &mut Vec::new()).unwrap();
        let path = DataDir::new(&dir).config();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n# [ci]\n"), "{text}");
        assert!(text.contains("ci_not_configured") && text.contains("docs/ci.md"));
        assert_eq!(Config::load(&dir, &Flags::default()).unwrap().ci, None);
        // Uncommenting the one line turns CI on (CI tokens; no issuers yet).
        fs::write(&path, text.replace("\n# [ci]\n", "\n[ci]\n")).unwrap();
        let ci = Config::load(&dir, &Flags::default()).unwrap().ci.unwrap();
        assert!(ci.issuers.is_empty() && ci.rules.is_empty());
    }

    #[test]
    fn init_makes_the_timestamp_authority_and_audits_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut out = Vec::new();
        init(&dir, None, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let tsa = DataDir::new(&dir).tsa();
        assert!(
            out.contains(&format!("CA certificate {}", tsa.join("ca.pem").display())),
            "{out}"
        );
        for file in [
            "tsa/ca.pem",
            "tsa/tsa.pem",
            "tsa/chain.pem",
            "keys/tsa.pem",
            "keys/tsa-ca.pem",
        ] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        let store = crate::store::Store::open(DataDir::new(&dir).db()).unwrap();
        let records = store.audit_records(0, 100).unwrap();
        let setup = records.iter().find(|r| r.action == "tsa.setup").unwrap();
        assert_eq!(setup.actor, "system");
        assert_eq!(setup.details["key"], "file");
        assert_eq!(setup.details["ca_made"], true);
        let tsa_pem = fs::read(tsa.join("tsa.pem")).unwrap();
        let der = openssl::x509::X509::from_pem(&tsa_pem)
            .unwrap()
            .to_der()
            .unwrap();
        assert_eq!(
            setup.details["certificate_sha256"],
            hex::encode(sha256(&der)).as_str()
        );
        // The TSA CA is trusted out of the box: listed in org/tsas.json,
        // which is published.
        let ca_der = openssl::x509::X509::from_pem(&fs::read(tsa.join("ca.pem")).unwrap())
            .unwrap()
            .to_der()
            .unwrap();
        let listed = store.tsas().unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].tsa.name, crate::tsa::OWN_TSA_NAME);
        assert_eq!(listed[0].tsa.certificate.cert().to_der().unwrap(), ca_der);
        let bytes = store.tsas_document().unwrap().to_vec().unwrap();
        let path = format!("targets/org/{}.tsas.json", hex::encode(sha256(&bytes)));
        let published = store.latest_published(&path).unwrap();
        assert!(published.is_some(), "{path} is not published");
        assert!(records.iter().any(|r| r.action == "tsa.create"
            && r.subject == crate::tsa::OWN_TSA_NAME
            && r.actor == "system"));
    }

    /// A writer that always fails (standard output closed).
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("standard output is closed"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_init_on_postgresql_leaves_the_database_as_it_found_it() {
        let Some(cluster) = keyshare_testkit::postgres::Cluster::shared() else {
            return;
        };
        let (_, url) = cluster.database();
        let tmp = tempfile::tempdir().unwrap();
        let with_store = |name: &str| {
            let dir = tmp.path().join(name);
            fs::create_dir(&dir).unwrap();
            fs::write(
                dir.join("keyshare.toml"),
                format!("[store]\nurl = \"{url}\"\n"),
            )
            .unwrap();
            dir
        };
        let tables = || -> i64 {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .query_one(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .unwrap()
                .get(0)
        };
        // Fails at the very end, after publishing and making the token.
        let dir = with_store("a");
        let err = init(&dir, None, &mut Closed).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        assert_eq!(tables(), 0, "nothing left in the database");
        assert!(!DataDir::new(&dir).keys().exists(), "nor in the directory");
        // So init can simply run again.
        init(&dir, None, &mut Vec::new()).unwrap();
        let made = tables();
        assert!(made > 10, "{made} tables");
        // Another init on that database fails, and leaves the repository
        // the first one made alone.
        let other = with_store("b");
        init(&other, None, &mut Closed).unwrap_err();
        assert_eq!(tables(), made);
        let config = Config::load(&dir, &Flags::default()).unwrap();
        let store = open_store(&DataDir::new(&dir).db(), &config).unwrap();
        assert!(store
            .latest_published("metadata/1.root.json")
            .unwrap()
            .is_some());
    }
}
