//! The store's connection: SQLite or PostgreSQL behind one small interface,
//! so that every query of the store is written once.
//!
//! * [`Db`] runs a statement ([`Db::exec`]), reads one row ([`Db::row`]) or
//!   all of them ([`Db::rows`]). Statements are written in SQLite's dialect
//!   with `?N` (or `?`) placeholders; for PostgreSQL, [`translate`] turns the
//!   placeholders into `$N` and rewrites the few constructs the dialects
//!   spell differently (listed there, in one place). A statement that
//!   differs more is written twice, chosen with [`Db::backend`].
//! * Parameters are anything `rusqlite::ToSql` (tuples and arrays of them,
//!   [`Params`]); for PostgreSQL each is taken as SQLite would store it
//!   (NULL, an integer, text or a blob) and sent as the type PostgreSQL
//!   expects at that place (`bigint`, `integer`, `text`, `bytea`, ...).
//! * Columns are read with `rusqlite::types::FromSql` in both: a PostgreSQL
//!   value is first taken as the SQLite value it stands for, so a column
//!   converts the same way whichever database it came from.
//!
//! SQLite statements go through rusqlite's statement cache, exactly as
//! before there was a second backend; PostgreSQL statements are prepared
//! once per connection and kept ([`PgConn`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{FromSql as LiteFromSql, ToSqlOutput, Value, ValueRef};
use rusqlite::ToSql;

use super::error::{Error, Result};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL connection with its prepared statements (by the store's
/// SQLite text of each).
pub(crate) struct PgConn {
    pub(crate) client: Client,
    /// Where to connect again when the connection is lost.
    url: super::pg::PostgresUrl,
    statements: HashMap<String, postgres::Statement>,
    /// A statement failed since the transaction began (PostgreSQL then
    /// refuses the rest of it, unless a savepoint is rolled back to).
    pub(crate) failed: bool,
    /// An error that was not the database's answer to a statement (the
    /// connection reset or closed): connect again before the next
    /// transaction.
    broken: bool,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("statements", &self.statements.len())
            .finish_non_exhaustive()
    }
}

impl PgConn {
    pub(crate) fn connect(url: &super::pg::PostgresUrl) -> Result<Self> {
        Ok(Self {
            client: Client(Some(url.connect()?)),
            url: url.clone(),
            statements: HashMap::new(),
            failed: false,
            broken: false,
        })
    }

    /// Notes an error of the client: a statement that failed, and whether
    /// the connection itself may be gone.
    pub(crate) fn note(&mut self, e: &postgres::Error) {
        self.failed = true;
        if e.as_db_error().is_none() {
            self.broken = true;
        }
    }

    /// `batch_execute`, noting a failure.
    pub(crate) fn batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| {
            self.note(&e);
            e.into()
        })
    }

    /// Connects again if the connection was lost (the database restarted,
    /// or ended this session): called before a transaction begins, so a
    /// lost connection costs the transaction that found it lost, not every
    /// one after it.
    pub(crate) fn reconnect_if_closed(&mut self) -> Result<()> {
        if !self.broken && !self.client.is_closed() {
            return Ok(());
        }
        tracing::warn!(database = %self.url, "the PostgreSQL connection was lost; connecting again");
        self.client = Client(Some(self.url.connect()?));
        self.statements.clear();
        self.broken = false;
        Ok(())
    }

    /// Runs `f` with the prepared statement and the parameters; notes a failure.
    fn run<T, P: Params>(
        &mut self,
        sql: &str,
        params: &P,
        f: impl FnOnce(
            &mut postgres::Client,
            &postgres::Statement,
            &[&(dyn PgToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        let statement = self.prepare(sql)?;
        let values = pg_values(params)?;
        f(&mut self.client, &statement, &pg_refs(&values)).map_err(|e| {
            self.note(&e);
            e.into()
        })
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(&translate(sql)).map_err(|e| {
            self.note(&e);
            Error::from(e)
        })?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// A `postgres::Client` that may be dropped on any thread.
///
/// The client runs its connection on a runtime of its own and blocks on
/// it, which panics on a thread that drives an async runtime (the store is
/// used from blocking threads, but may be dropped on the server's main
/// thread): there, it is closed on a thread of its own.
pub(crate) struct Client(Option<postgres::Client>);

impl std::ops::Deref for Client {
    type Target = postgres::Client;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &postgres::Client {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl std::ops::DerefMut for Client {
    #[allow(clippy::expect_used)]
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.0.as_mut().expect("taken only when dropped")
    }
}

impl Client {
    /// Takes over `client` (closed on a thread of its own when dropped).
    pub(crate) fn new(client: postgres::Client) -> Self {
        Self(Some(client))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("keyshare-pg-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

/// One connection to either database; cheap to copy.
#[derive(Clone, Copy)]
pub(crate) enum Db<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c RefCell<PgConn>),
}

/// A row being read.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// Column positions ([`Row::get`] takes `usize` as rusqlite's does).
pub(crate) trait ColumnIndex: Copy {
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// Column `i`, converted as rusqlite converts it.
    pub(crate) fn get<I: ColumnIndex, T: LiteFromSql>(&self, i: I) -> Result<T> {
        let i = i.index();
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => {
                let value: Column = r.try_get(i)?;
                T::column_result(ValueRef::from(&value.0))
                    .map_err(|e| Error::corrupt("(postgres row)", format!("column {i}: {e}")))
            }
        }
    }
}

/// Reads a row into a tuple of its columns, in order.
pub(crate) trait FromRow: Sized {
    fn from_row(r: &Row<'_>) -> Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: LiteFromSql),+> FromRow for ($($t,)+) {
            fn from_row(r: &Row<'_>) -> Result<Self> {
                Ok(($(r.get::<usize, $t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// A row as a tuple of its columns ([`FromRow`]).
pub(crate) fn tuple_row<T: FromRow>(r: &Row<'_>) -> Result<T> {
    T::from_row(r)
}

/// Statement parameters: tuples and arrays of `rusqlite::ToSql` values.
pub(crate) trait Params {
    fn values(&self) -> Vec<&dyn ToSql>;
}

impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Vec<&dyn ToSql> {
        Vec::new()
    }
}

impl Params for Vec<Value> {
    fn values(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|v| v as &dyn ToSql).collect()
    }
}

macro_rules! array_params {
    ($($n:literal)+) => {
        $(
            impl<T: ToSql> Params for [T; $n] {
                fn values(&self) -> Vec<&dyn ToSql> {
                    self.iter().map(|v| v as &dyn ToSql).collect()
                }
            }
        )+
    };
}

array_params!(1 2 3 4 5 6 7 8);

macro_rules! tuple_params {
    ($($t:ident $i:tt),+) => {
        impl<$($t: ToSql),+> Params for ($($t,)+) {
            fn values(&self) -> Vec<&dyn ToSql> {
                vec![$(&self.$i as &dyn ToSql),+]
            }
        }
    };
}

tuple_params!(A 0);
tuple_params!(A 0, B 1);
tuple_params!(A 0, B 1, C 2);
tuple_params!(A 0, B 1, C 2, D 3);
tuple_params!(A 0, B 1, C 2, D 3, E 4);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);

impl<'c> Db<'c> {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a statement; returns how many rows it changed.
    pub(crate) fn exec<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        match self {
            Db::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params.values()))?),
            Db::Postgres(c) => {
                let n = c
                    .borrow_mut()
                    .run(sql, &params, |client, s, p| client.execute(s, p))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// The first row of a query, through `f`; `None` when there is none.
    pub(crate) fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<Option<T>>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        match self {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params.values()))?;
                match rows.next()? {
                    Some(r) => f(&Row::Sqlite(r)).map(Some),
                    None => Ok(None),
                }
            }
            Db::Postgres(c) => {
                let row = c.borrow_mut().run(sql, &params, |client, s, p| {
                    client.query(s, p).map(|rows| rows.into_iter().next())
                })?;
                row.map(|r| f(&Row::Postgres(&r))).transpose()
            }
        }
    }

    /// The only row of a query that always returns one (`count(*)`, ...).
    pub(crate) fn one<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.row(sql, params, f)?.ok_or_else(|| Error::Schema {
            message: format!("no row from `{sql}`"),
        })
    }

    /// Every row of a query, through `f`, in order.
    pub(crate) fn rows<T, P, F>(&self, sql: &str, params: P, mut f: F) -> Result<Vec<T>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        match self {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params.values()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
                Ok(out)
            }
            Db::Postgres(c) => {
                let rows = c
                    .borrow_mut()
                    .run(sql, &params, |client, s, p| client.query(s, p))?;
                rows.iter().map(|r| f(&Row::Postgres(r))).collect()
            }
        }
    }

    /// Every row of a query, through `f`, in order, without keeping them
    /// (SQLite streams them; PostgreSQL's arrive together).
    pub(crate) fn each<P, F>(&self, sql: &str, params: P, mut f: F) -> Result<()>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<()>,
    {
        match self {
            Db::Sqlite(c) => {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(params.values()))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Sqlite(r))?;
                }
                Ok(())
            }
            Db::Postgres(_) => self.rows(sql, params, f).map(drop),
        }
    }

    /// A transaction control statement (`SAVEPOINT`, `RELEASE`, `ROLLBACK
    /// TO`): through SQLite's statement cache, as one simple query to
    /// PostgreSQL.
    pub(crate) fn control(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(_) => self.exec(sql, []).map(drop),
            Db::Postgres(_) => self.batch(sql),
        }
    }

    /// Runs several statements without parameters (schema, savepoints).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.borrow_mut().batch(sql),
        }
    }
}

/// A parameter as SQLite would store it.
#[derive(Debug)]
struct PgValue(Value);

fn pg_values<P: Params>(params: &P) -> Result<Vec<PgValue>> {
    params
        .values()
        .into_iter()
        .map(|v| {
            let value = match v.to_sql()? {
                ToSqlOutput::Borrowed(r) => match r {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|e| Error::invalid("parameter", e.to_string()))?,
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                },
                ToSqlOutput::Owned(v) => v,
                other => {
                    return Err(Error::invalid(
                        "parameter",
                        format!("{other:?} has no PostgreSQL form here"),
                    ))
                }
            };
            Ok(PgValue(value))
        })
        .collect()
}

fn pg_refs(values: &[PgValue]) -> Vec<&(dyn PgToSql + Sync)> {
    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect()
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl PgToSql for PgValue {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let mismatch =
            || -> BoxError { format!("a {} value cannot be sent as {ty}", kind(&self.0)).into() };
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => PgToSql::to_sql(i, ty, out),
                Type::INT4 => PgToSql::to_sql(&i32::try_from(*i)?, ty, out),
                Type::INT2 => PgToSql::to_sql(&i16::try_from(*i)?, ty, out),
                Type::BOOL => PgToSql::to_sql(&(*i != 0), ty, out),
                Type::FLOAT8 => {
                    #[allow(clippy::cast_precision_loss)]
                    let f = *i as f64;
                    PgToSql::to_sql(&f, ty, out)
                }
                _ => Err(mismatch()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => PgToSql::to_sql(f, ty, out),
                _ => Err(mismatch()),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    PgToSql::to_sql(&s.as_str(), &Type::TEXT, out)
                }
                _ => Err(mismatch()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => PgToSql::to_sql(&b.as_slice(), ty, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::BYTEA
        )
    }

    to_sql_checked!();
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "integer",
        Value::Real(_) => "real",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
    }
}

/// A PostgreSQL column as the SQLite value it stands for.
struct Column(Value);

impl<'a> FromSql<'a> for Column {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Column(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Column(Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::BYTEA
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
        )
    }
}

/// A statement of the store (SQLite's dialect) in PostgreSQL's:
///
/// * `?N` becomes `$N`, and each bare `?` the next `$N`;
/// * `INSERT OR IGNORE INTO ...` becomes `INSERT INTO ... ON CONFLICT DO
///   NOTHING`;
/// * `IS NOT 'literal'` becomes `IS DISTINCT FROM 'literal'`;
/// * `?N IS NULL` and `?N ||` become `$N::text IS NULL` and `$N::text ||`
///   (PostgreSQL must know a parameter's type; the store only tests text
///   parameters for NULL, and only joins text).
///
/// String literals are left alone.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 1;
    let mut chars = sql.char_indices().peekable();
    let mut in_string = false;
    while let Some((_, c)) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\'' {
                in_string = false;
            }
            continue;
        }
        match c {
            '\'' => {
                in_string = true;
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let n = if digits.is_empty() {
                    let n = next;
                    next += 1;
                    n.to_string()
                } else {
                    digits
                };
                out.push('$');
                out.push_str(&n);
            }
            _ => out.push(c),
        }
    }
    let mut out = out.replace(" IS NOT '", " IS DISTINCT FROM '");
    // `$N IS NULL`: give the parameter a type.
    let mut typed = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find('$') {
        let (before, after) = rest.split_at(at);
        typed.push_str(before);
        let digits: String = after[1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let end = 1 + digits.len();
        typed.push_str(&after[..end]);
        if !digits.is_empty()
            && (after[end..].starts_with(" IS NULL") || after[end..].starts_with(" ||"))
        {
            typed.push_str("::text");
        }
        rest = &after[end..];
    }
    typed.push_str(rest);
    out = typed;
    if let Some(tail) = out.trim_start().strip_prefix("INSERT OR IGNORE INTO ") {
        out = format!("INSERT INTO {tail} ON CONFLICT DO NOTHING");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn placeholders_and_dialect_are_translated_outside_string_literals() {
        assert_eq!(
            translate("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND (?2 IS NULL OR d < ?2)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND ($2::text IS NULL OR d < $2)"
        );
        assert_eq!(
            translate("SELECT a FROM t WHERE x = ? AND y = ? LIMIT ?"),
            "SELECT a FROM t WHERE x = $1 AND y = $2 LIMIT $3"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO t (a, b) VALUES (?1, ?2)"),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("SELECT 1 WHERE f.role IS NOT 'root'"),
            "SELECT 1 WHERE f.role IS DISTINCT FROM 'root'"
        );
    }
}
