//! shaping (being written).
