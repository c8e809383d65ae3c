//! gatehouse-declarative
