//! gatehouse-proto
