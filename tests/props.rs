//! Property test: random command sequences against a reference model.
