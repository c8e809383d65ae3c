//! gatehouse-web
