const T: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("t");
fn main() {
    let db = redb::Database::create(std::env::args().nth(1).unwrap()).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(T).unwrap().insert("k", 1).unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    use redb::{ReadableDatabase, ReadableTable};
    println!("{:?}", rx.open_table(T).unwrap().get("k").unwrap().map(|v| v.value()));
}
