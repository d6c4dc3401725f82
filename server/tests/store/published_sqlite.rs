//! Published files as SQLite keeps them: rows the database refuses to
//! change, rows a publish leaves as written, and the upgrade from schema
//! 10. (The PostgreSQL store's refusals: `postgres/backend.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::support::*;
use std::collections::BTreeMap;

use keyshare_policy::repo::{Options, Repository};

#[test]
fn published_rows_cannot_be_changed_or_deleted() {
    let s = Scratch::new();
    let mut store = s.open();
    let files = repository().commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&files))
        .unwrap();
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    let update = conn.execute("UPDATE published_files SET bytes = x'00'", []);
    assert!(update.unwrap_err().to_string().contains("immutable"));
    let update = conn.execute("UPDATE published_files SET lineage = 'x'", []);
    assert!(update.unwrap_err().to_string().contains("immutable"));
    let delete = conn.execute("DELETE FROM published_files", []);
    assert!(delete.unwrap_err().to_string().contains("never deleted"));
    // Even a root marked superseded stays.
    conn.execute(
        "INSERT INTO published_superseded (id, superseded_at)
         SELECT id, '2000-01-01T00:00:00Z' FROM published_files WHERE role = 'root'",
        [],
    )
    .unwrap();
    let delete = conn.execute("DELETE FROM published_files WHERE role = 'root'", []);
    assert!(delete.unwrap_err().to_string().contains("root versions"));
    assert_eq!(count(&s.path, "published_files"), files.len() as i64);
}

/// The schema's record of which file is current, and since when the others
/// are superseded, as rows of `(path, superseded_at)`.
fn superseded_rows(path: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT f.path, s.superseded_at FROM published_superseded s
             JOIN published_files f ON f.id = s.id ORDER BY f.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn superseding_a_file_leaves_its_row_as_written() {
    // Marking the previous version superseded writes beside it, not in its
    // row: the rows of the first publish are byte for byte what they were.
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let first = repo.commit(T0).unwrap();
    store
        .transaction_at(T0, |tx| tx.record_published(&first))
        .unwrap();
    let rows = |path: &std::path::Path| -> Vec<(i64, String, Vec<u8>)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT * FROM published_files ORDER BY id")
            .unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            let mut all = Vec::new();
            for i in 0..n {
                all.push(format!("{:?}", r.get_ref(i)?));
            }
            Ok((r.get(0)?, all.join("|"), r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let before = rows(&s.path);
    let later = T0 + time::Duration::minutes(5);
    let target = repo
        .set_target("targets", "org/peers.json", b"{}", None)
        .unwrap();
    let mut second = repo.commit(later).unwrap();
    second.push(target);
    store
        .transaction_at(later, |tx| tx.record_published(&second))
        .unwrap();
    let after = rows(&s.path);
    assert_eq!(&after[..before.len()], &before[..]);
    // The snapshot, targets and timestamp of the first publish are
    // superseded since the second; the root is current (its own lineage).
    let superseded = superseded_rows(&s.path);
    let mut paths: Vec<&str> = superseded.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "metadata/1.snapshot.json",
            "metadata/1.targets.json",
            "metadata/timestamp.json"
        ]
    );
    assert!(superseded
        .iter()
        .all(|(_, at)| at == "2026-01-02T03:09:05Z"));
    // Nothing may rewrite a row, not even to mark it.
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    let update = conn.execute("UPDATE published_files SET created_at = created_at", []);
    assert!(update.unwrap_err().to_string().contains("immutable"));
    // A current file cannot be deleted, a superseded one can.
    let current = conn.execute(
        "DELETE FROM published_files WHERE path = 'metadata/2.snapshot.json'",
        [],
    );
    assert!(current.unwrap_err().to_string().contains("never deleted"));
    let gone = conn
        .execute(
            "DELETE FROM published_files WHERE path = 'metadata/1.snapshot.json'",
            [],
        )
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(superseded_rows(&s.path).len(), 2, "its mark went with it");
}

#[test]
fn a_store_of_schema_10_keeps_which_files_are_current_and_since_when_the_others_are_not() {
    let s = Scratch::new();
    let mut store = s.open();
    let mut repo = repository();
    let at = |minutes: i64| T0 + time::Duration::minutes(minutes);
    for (i, bytes) in [&b"{}"[..], b"[]", b"{}"].iter().enumerate() {
        let t = at(10 * i as i64);
        let target = repo
            .set_target("targets", "org/peers.json", bytes, None)
            .unwrap();
        let mut files = repo.commit(t).unwrap();
        files.push(target);
        store
            .transaction_at(t, |tx| tx.record_published(&files))
            .unwrap();
    }
    let superseded = superseded_rows(&s.path);
    drop(store);
    downgrade_published_files_to_schema_10(&s.path);
    let conn = rusqlite::Connection::open(&s.path).unwrap();
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM published_files WHERE superseded_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, superseded.len() as i64);
    drop(conn);

    let mut store = s.open();
    assert_eq!(superseded_rows(&s.path), superseded);
    // Pruning works from the migrated marks: everything superseded goes,
    // every current file and the root stay, and the repository restores.
    let pruned = store
        .transaction_at(at(100), |tx| tx.prune_superseded(at(100), None))
        .unwrap();
    assert_eq!(pruned, superseded.len());
    for f in &repo.current_files().unwrap() {
        assert_eq!(
            &store.published_file(&f.path).unwrap().bytes[..],
            &f.bytes[..]
        );
    }
    let last = store.last_published().unwrap().unwrap();
    Repository::restore(&last.as_published(), BTreeMap::new(), Options::default()).unwrap();
    // And publishing goes on: the next version supersedes the migrated
    // current one.
    let later = at(200);
    let target = repo
        .set_target("targets", "org/peers.json", b"[1]", None)
        .unwrap();
    let mut files = repo.commit(later).unwrap();
    files.push(target);
    store
        .transaction_at(later, |tx| tx.record_published(&files))
        .unwrap();
    let marks = superseded_rows(&s.path);
    let paths: Vec<&str> = marks.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"metadata/timestamp.json"), "{marks:?}");
    assert!(paths.contains(&"metadata/3.snapshot.json"), "{marks:?}");
    assert!(
        marks.iter().all(|(_, at)| at == "2026-01-02T06:24:05Z"),
        "{marks:?}"
    );
}
