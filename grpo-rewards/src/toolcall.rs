//! toolcall (being written).
