//! redb vs SQLite (rusqlite, bundled) on the ledger read model's workload (issue #18).
//!
//! Usage (ENGINE = redb | redb-qr | redb-none | sqlite-normal | sqlite-full | sqlite-nockpt;
//!        redb = Durability::Immediate, redb-qr = that + quick-repair, redb-none = Durability::None):
//!   store-compare build ENGINE PATH ACCOUNTS IDS   bulk load, one transaction
//!   store-compare write ENGINE PATH ACCOUNTS IDS   one "command": open, 2 accounts + 1 id + 1 absent id, one write txn
//!   store-compare read  ENGINE PATH ACCOUNTS IDS   open, 2 account lookups, 1 id lookup
//!   store-compare scan  ENGINE PATH                every account in key order
//!   store-compare compact redb PATH                redb only: compact the file (to compare sizes)
//!   store-compare crash ENGINE PATH ACCOUNTS IDS   like write, then abort() without closing the database
//!   store-compare drive RUNS -- ARGS... [+ ARGS...] spawn each `store-compare ARGS...` RUNS times, interleaved; median/p90
//! Every mode but drive prints one line: `mode engine us=<µs in process> rss_kib=<VmHWM>`.
use std::{path::Path, process::Command, time::Instant};

use redb::{Database, Durability, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const META: TableDefinition<u64, &[u8]> = TableDefinition::new("meta");

static T0: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

// ---------- the data ----------

fn account_name(i: u64) -> String {
    format!("cust:{i:09}")
}
/// Random-looking 16-char id keys, as an importer's external ids would be.
fn id_key(i: u64) -> String {
    format!("{:016x}", splitmix64(i))
}
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Account row: owner (u8 len + bytes), unit u32, balance i128, closed u8, held i128, holds (u8 n + n × u64).
struct Account {
    owner: String,
    unit: u32,
    balance: i128,
    closed: bool,
    held: i128,
    holds: Vec<u64>,
}
impl Account {
    fn new(i: u64) -> Self {
        let holds = if i % 10 == 0 { vec![i * 5, i * 5 + 1] } else { vec![] };
        Account { owner: format!("owner-{i}"), unit: (i % 3) as u32, balance: (i as i128) * 100, closed: false, held: 0, holds }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(self.owner.len() as u8);
        out.extend_from_slice(self.owner.as_bytes());
        out.extend_from_slice(&self.unit.to_le_bytes());
        out.extend_from_slice(&self.balance.to_le_bytes());
        out.push(self.closed as u8);
        out.extend_from_slice(&self.held.to_le_bytes());
        out.push(self.holds.len() as u8);
        for h in &self.holds {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }
    fn decode(b: &[u8]) -> Self {
        let n = b[0] as usize;
        let owner = String::from_utf8(b[1..1 + n].to_vec()).expect("utf8");
        let mut p = 1 + n;
        let mut take = |k: usize| {
            let s = &b[p..p + k];
            p += k;
            s
        };
        let unit = u32::from_le_bytes(take(4).try_into().unwrap());
        let balance = i128::from_le_bytes(take(16).try_into().unwrap());
        let closed = take(1)[0] != 0;
        let held = i128::from_le_bytes(take(16).try_into().unwrap());
        let nh = take(1)[0] as usize;
        let holds = (0..nh).map(|_| u64::from_le_bytes(take(8).try_into().unwrap())).collect();
        Account { owner, unit, balance, closed, held, holds }
    }
}
/// Meta row: covered seq, byte offset, line hash.
fn meta(seq: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(48);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&(seq * 180).to_le_bytes());
    m.extend_from_slice(&[0xab; 32]);
    m
}

// ---------- the engines ----------

fn sqlite_open(path: &Path, engine: &str, read_only: bool) -> Res<Connection> {
    let flags = if read_only { OpenFlags::SQLITE_OPEN_READ_ONLY } else { OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE };
    let c = Connection::open_with_flags(path, flags)?;
    c.pragma_update(None, "synchronous", if engine == "sqlite-full" { "FULL" } else { "NORMAL" })?;
    if engine == "sqlite-nockpt" {
        // Keep the WAL across processes: no checkpoint (and its fsyncs) at every close; the
        // auto-checkpoint still runs every 1000 pages. Commits then do no fsync at all (WAL + NORMAL).
        c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    }
    Ok(c)
}

/// redb's page cache defaults to 1 GiB (filled on demand); REDB_CACHE_MIB caps it.
fn redb_builder() -> Res<redb::Builder> {
    let mut b = Database::builder();
    if let Ok(mib) = std::env::var("REDB_CACHE_MIB") {
        b.set_cache_size(mib.parse::<usize>()? << 20);
    }
    Ok(b)
}
fn redb_open(path: &Path) -> Res<Database> {
    Ok(redb_builder()?.open(path)?)
}
fn redb_open_ro(path: &Path) -> Res<ReadOnlyDatabase> {
    Ok(redb_builder()?.open_read_only(path)?)
}

fn build(engine: &str, path: &Path, accounts: u64, ids: u64) -> Res<()> {
    let _ = std::fs::remove_file(path);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    let mut buf = Vec::with_capacity(64);
    if engine.starts_with("redb") {
        let mut builder = Database::builder();
        if let Ok(kib) = std::env::var("BUILD_CACHE_KIB") {
            builder.set_cache_size(kib.parse::<usize>()? * 1024);
        }
        let db = builder.create(path)?;
        let mut tx = db.begin_write()?;
        tx.set_quick_repair(engine == "redb-qr");
        {
            let mut t = tx.open_table(ACCOUNTS)?;
            for i in 0..accounts {
                Account::new(i).encode(&mut buf);
                t.insert(account_name(i).as_str(), buf.as_slice())?;
            }
            eprintln!("accounts loaded at {:?}", T0.elapsed());
            let mut t = tx.open_table(IDS)?;
            for i in 0..ids {
                t.insert(id_key(i).as_str(), i)?;
            }
            tx.open_table(META)?.insert(0, meta(accounts + ids).as_slice())?;
        }
        tx.commit()?;
        eprintln!("committed at {:?}", T0.elapsed());
    } else {
        let mut c = sqlite_open(path, engine, false)?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        // Bulk-load page cache in KiB (SQLite's default is 2000 KiB); BUILD_CACHE_KIB=65536 tries 64 MiB.
        if let Ok(kib) = std::env::var("BUILD_CACHE_KIB") {
            c.pragma_update(None, "cache_size", -kib.parse::<i64>()?)?;
        }
        c.execute_batch(
            "CREATE TABLE accounts(name TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE ids(key TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE meta(k INTEGER PRIMARY KEY, v BLOB NOT NULL);",
        )?;
        let tx = c.transaction()?;
        {
            let mut st = tx.prepare("INSERT INTO accounts VALUES (?1, ?2)")?;
            for i in 0..accounts {
                Account::new(i).encode(&mut buf);
                st.execute(params![account_name(i), buf])?;
            }
            eprintln!("accounts loaded at {:?}", T0.elapsed());
            let mut st = tx.prepare("INSERT INTO ids VALUES (?1, ?2)")?;
            for i in 0..ids {
                st.execute(params![id_key(i), i as i64])?;
            }
            tx.execute("INSERT INTO meta VALUES (0, ?1)", params![meta(accounts + ids)])?;
        }
        tx.commit()?;
        eprintln!("committed at {:?}", T0.elapsed());
    }
    Ok(())
}

/// One ledger command: returns after the write transaction is durable (or, if !write, after the reads).
fn command(engine: &str, path: &Path, accounts: u64, ids: u64, write: bool, crash: bool) -> Res<()> {
    let mut rng = fastrand::Rng::with_seed(splitmix64(std::process::id() as u64 ^ nanos()));
    let (a, b) = (rng.u64(0..accounts), rng.u64(0..accounts));
    let (a, b) = (account_name(a), account_name(b));
    let present = id_key(rng.u64(0..ids));
    let fresh = format!("{:016x}", rng.u64(..)); // absent: looked up, then inserted
    let mut buf = Vec::with_capacity(64);
    if engine.starts_with("redb") {
        if !write {
            let db = redb_open_ro(path)?;
            let tx = db.begin_read()?;
            let t = tx.open_table(ACCOUNTS)?;
            let x = Account::decode(t.get(a.as_str())?.expect("a").value());
            let y = Account::decode(t.get(b.as_str())?.expect("b").value());
            let s = tx.open_table(IDS)?.get(present.as_str())?.expect("id").value();
            std::hint::black_box((x.balance, y.balance, s));
            return Ok(());
        }
        let db = redb_open(path)?;
        if std::env::var_os("MARK").is_some() {
            eprintln!("-- opened");
        }
        let (mut x, mut y) = {
            let tx = db.begin_read()?;
            let t = tx.open_table(ACCOUNTS)?;
            let x = Account::decode(t.get(a.as_str())?.expect("a").value());
            let y = Account::decode(t.get(b.as_str())?.expect("b").value());
            let ids_t = tx.open_table(IDS)?;
            assert!(ids_t.get(present.as_str())?.is_some());
            assert!(ids_t.get(fresh.as_str())?.is_none());
            (x, y)
        };
        // (the journal append + fsync would happen here)
        x.balance -= 7;
        y.balance += 7;
        let mut tx = db.begin_write()?;
        // The read model is a cache that catches up from the journal, so redb-none is admissible too.
        tx.set_durability(if engine == "redb-none" { Durability::None } else { Durability::Immediate })?;
        tx.set_quick_repair(engine == "redb-qr");
        {
            let mut t = tx.open_table(ACCOUNTS)?;
            x.encode(&mut buf);
            t.insert(a.as_str(), buf.as_slice())?;
            y.encode(&mut buf);
            t.insert(b.as_str(), buf.as_slice())?;
            tx.open_table(IDS)?.insert(fresh.as_str(), accounts + ids)?;
            tx.open_table(META)?.insert(0, meta(accounts + ids + 1).as_slice())?;
        }
        tx.commit()?;
        if std::env::var_os("MARK").is_some() {
            eprintln!("-- committed"); // to place the commit in an strace
        }
        if crash {
            std::process::abort();
        }
    } else {
        let mut c = sqlite_open(path, engine, !write)?;
        if std::env::var_os("MARK").is_some() {
            eprintln!("-- opened");
        }
        let get_acc = |c: &Connection, k: &str| -> Res<Account> {
            let v: Vec<u8> = c.prepare_cached("SELECT v FROM accounts WHERE name = ?1")?.query_row([k], |r| r.get(0))?;
            Ok(Account::decode(&v))
        };
        let get_id = |c: &Connection, k: &str| -> Res<Option<i64>> {
            Ok(c.prepare_cached("SELECT seq FROM ids WHERE key = ?1")?.query_row([k], |r| r.get(0)).optional()?)
        };
        let mut x = get_acc(&c, &a)?;
        let mut y = get_acc(&c, &b)?;
        assert!(get_id(&c, &present)?.is_some());
        if !write {
            std::hint::black_box((x.balance, y.balance));
            return Ok(());
        }
        assert!(get_id(&c, &fresh)?.is_none());
        x.balance -= 7;
        y.balance += 7;
        let tx = c.transaction()?;
        {
            let mut up = tx.prepare_cached("UPDATE accounts SET v = ?2 WHERE name = ?1")?;
            x.encode(&mut buf);
            up.execute(params![a, buf])?;
            y.encode(&mut buf);
            up.execute(params![b, buf])?;
            tx.execute("INSERT INTO ids VALUES (?1, ?2)", params![fresh, (accounts + ids) as i64])?;
            tx.execute("UPDATE meta SET v = ?1 WHERE k = 0", params![meta(accounts + ids + 1)])?;
        }
        tx.commit()?;
        if std::env::var_os("MARK").is_some() {
            eprintln!("-- committed"); // to place the commit in an strace
        }
        if crash {
            std::process::abort();
        }
    }
    Ok(())
}

fn scan(engine: &str, path: &Path) -> Res<()> {
    let (mut n, mut sum) = (0u64, 0i128);
    if engine.starts_with("redb") {
        let db = redb_open_ro(path)?;
        let tx = db.begin_read()?;
        for row in tx.open_table(ACCOUNTS)?.iter()? {
            let (k, v) = row?;
            let acc = Account::decode(v.value());
            std::hint::black_box(k.value());
            n += 1;
            sum += acc.balance;
        }
    } else {
        let c = sqlite_open(path, engine, true)?;
        let mut st = c.prepare("SELECT name, v FROM accounts ORDER BY name")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let name: &str = r.get_ref(0)?.as_str()?;
            std::hint::black_box(name);
            let acc = Account::decode(r.get_ref(1)?.as_blob()?);
            n += 1;
            sum += acc.balance;
        }
    }
    eprintln!("scanned {n} accounts, total {sum}");
    Ok(())
}

// ---------- driver ----------

/// Runs each `+`-separated command line RUNS times, interleaved round-robin so that machine noise
/// (other jobs, fsync latency) falls on all of them alike.
fn drive(runs: usize, args: &[String]) -> Res<()> {
    let exe = std::env::current_exe()?;
    let groups: Vec<&[String]> = args.split(|a| a == "+").collect();
    // per group: wall ms, in-process ms, rss MiB
    let mut m: Vec<[Vec<f64>; 3]> = vec![Default::default(); groups.len()];
    for _ in 0..runs {
        for (g, cmd) in groups.iter().enumerate() {
            let t = Instant::now();
            let out = Command::new(&exe).args(*cmd).output()?;
            m[g][0].push(t.elapsed().as_secs_f64() * 1e3);
            if !out.status.success() {
                return Err(format!("child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            for w in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Some(v) = w.strip_prefix("us=") {
                    m[g][1].push(v.parse::<f64>()? / 1e3);
                }
                if let Some(v) = w.strip_prefix("rss_kib=") {
                    m[g][2].push(v.parse::<f64>()? / 1024.0);
                }
            }
        }
    }
    let q = |v: &[f64], p: f64| if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * p).round() as usize] };
    for (g, cmd) in groups.iter().enumerate() {
        for v in m[g].iter_mut() {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        }
        let [w, i, r] = &m[g];
        println!(
            "{:<48} n={runs} wall_ms med={:.2} p90={:.2} | in-proc_ms med={:.2} p90={:.2} | rss_MiB med={:.1} max={:.1}",
            cmd.join(" "),
            q(w, 0.5),
            q(w, 0.9),
            q(i, 0.5),
            q(i, 0.9),
            q(r, 0.5),
            q(r, 1.0),
        );
    }
    Ok(())
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}
fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()).unwrap_or(0)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    let t = *T0;
    let (mode, engine, path) = (arg(0), arg(1), Path::new(arg(2)));
    match mode {
        "drive" => return drive(arg(1).parse()?, &args[3..]),
        "build" => build(engine, path, num(3), num(4))?,
        "write" => command(engine, path, num(3), num(4), true, false)?,
        "crash" => command(engine, path, num(3), num(4), true, true)?,
        "read" => command(engine, path, num(3), num(4), false, false)?,
        "scan" => scan(engine, path)?,
        "compact" => {
            let mut db = redb_open(path)?;
            while db.compact()? {}
        }
        "noop" => {}
        _ => return Err("usage: see the top of src/main.rs".into()),
    }
    println!("{mode} {engine} us={} rss_kib={}", t.elapsed().as_micros(), peak_rss_kib());
    Ok(())
}
