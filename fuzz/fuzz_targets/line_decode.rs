//! The line decoder on arbitrary bytes: it must never panic, and every line
//! it accepts must be exactly the line `encode` writes for that event.
#![no_main]

use ledger::journal::line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = line::decode(data, &mut Vec::new()) {
        let mut again = Vec::new();
        line::encode(&decoded.event, &decoded.prev, &mut again);
        assert_eq!(again, data, "an accepted line is not in canonical form");
    }
    let _ = line::decode_header(data);
});
