//! Several processes writing at once.
