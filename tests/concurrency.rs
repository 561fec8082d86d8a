//! Several processes writing at once: every acknowledged command is in the
//! journal exactly once, money is conserved, no balance goes negative, and
//! the chain (checked by every replay) stays intact.

use std::collections::HashMap;
use std::thread;

use crate::common::TestEnv;

const ACCOUNTS: [&str; 3] = ["a", "b", "c"];
const WRITERS: usize = 6;
const TRANSFERS_EACH: usize = 12;

#[test]
fn concurrent_transfers_never_double_spend() {
    let env = TestEnv::new();
    for a in ACCOUNTS {
        env.ok(&format!("create {a}"));
        env.ok(&format!("deposit {a} 10"));
    }
    let acknowledged: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let env = &env;
                s.spawn(move || {
                    let mut ok = Vec::new();
                    for i in 0..TRANSFERS_EACH {
                        let from = ACCOUNTS[(w + i) % 3];
                        let to = ACCOUNTS[(w + i + 1) % 3];
                        // Large enough that some transfers must be refused.
                        let amount = format!("{}.{:02}", 3 + (w * 7 + i) % 5, (w * 13 + i) % 100);
                        let id = format!("w{w}-t{i}");
                        let out = env
                            .cmd()
                            .args(["transfer", from, to, &amount, "--id", &id])
                            .output()
                            .unwrap();
                        match out.status.code() {
                            Some(0) => ok.push(id),
                            Some(1) => assert!(
                                String::from_utf8_lossy(&out.stderr).contains("insufficient funds"),
                                "{}",
                                String::from_utf8_lossy(&out.stderr)
                            ),
                            other => panic!("{other:?}: {}", String::from_utf8_lossy(&out.stderr)),
                        }
                    }
                    ok
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(!acknowledged.is_empty());

    // Replaying re-checks the chain and every rule; balance exits 0 only if both hold.
    let balances = env.balances();
    let mut total = 0i128;
    for account in balances["accounts"].as_array().unwrap() {
        let cents: i128 = account["balance"]
            .as_str()
            .unwrap()
            .replace('.', "")
            .parse()
            .unwrap();
        assert!(cents >= 0, "{account}");
        total += cents;
    }
    assert_eq!(total, 3 * 1000, "money was created or destroyed");

    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in env.lines().iter().enumerate().skip(1) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event["seq"], i as u64, "lines interleaved or out of order");
        if let Some(id) = event["id"].as_str() {
            *seen.entry(id.to_owned()).or_default() += 1;
        }
    }
    for id in &acknowledged {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "acknowledged {id} is not in the journal exactly once"
        );
    }
    assert_eq!(
        seen.len(),
        acknowledged.len(),
        "an unacknowledged transfer was written"
    );
}

#[test]
fn concurrent_captures_never_capture_a_hold_twice() {
    const HOLDS: usize = 8;
    let env = TestEnv::with(&["create cust", "create shop", "deposit cust 100"]);
    for h in 0..HOLDS {
        env.ok(&format!("hold cust 10 --to shop --id order-{h}"));
    }
    // Every writer tries to capture every hold, in its own order; each
    // hold goes to exactly one of them.
    let captured: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let env = &env;
                s.spawn(move || {
                    let mut won = Vec::new();
                    for i in 0..HOLDS {
                        let order = format!("order-{}", (w + i) % HOLDS);
                        let out = env
                            .cmd()
                            .args([
                                "capture",
                                "--of-id",
                                &order,
                                "3",
                                "--id",
                                &format!("w{w}-{order}"),
                            ])
                            .output()
                            .unwrap();
                        match out.status.code() {
                            Some(0) => won.push(order),
                            Some(1) => assert!(
                                String::from_utf8_lossy(&out.stderr)
                                    .contains("was already captured"),
                                "{}",
                                String::from_utf8_lossy(&out.stderr)
                            ),
                            other => panic!("{other:?}: {}", String::from_utf8_lossy(&out.stderr)),
                        }
                    }
                    won
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut sorted = captured.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        HOLDS,
        "every hold captured once: {captured:?}"
    );
    assert_eq!(
        captured.len(),
        HOLDS,
        "no hold captured twice: {captured:?}"
    );
    let doc = env.balances();
    let shop = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "shop")
        .unwrap();
    assert_eq!(shop["balance"], "24.00", "8 captures of 3.00");
    assert!(env.ok("verify").contains("ok:"));
}
