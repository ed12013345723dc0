//! math verifier (being written).
