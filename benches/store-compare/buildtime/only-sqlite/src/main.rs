fn main() {
    let c = rusqlite::Connection::open(std::env::args().nth(1).unwrap()).unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS t(k TEXT PRIMARY KEY, v INTEGER); INSERT OR REPLACE INTO t VALUES ('k', 1)").unwrap();
    let v: i64 = c.query_row("SELECT v FROM t WHERE k = 'k'", [], |r| r.get(0)).unwrap();
    println!("{v}");
}
