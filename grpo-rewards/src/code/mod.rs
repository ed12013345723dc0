//! code verifier and sandbox (being written).
