//! The pagination envelope of every list response.

use serde::{Deserialize, Serialize};

/// Position of a page in a list. `next`/`previous` are page numbers, 0 when there is none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Pagination {
    /// Next page number, or 0.
    pub next: i64,
    /// Previous page number, or 0.
    pub previous: i64,
    /// Matching objects across all pages.
    pub count: i64,
    /// This page number.
    pub current: i64,
    /// Number of pages.
    pub total_pages: i64,
    /// 1-based index of the first object on this page, or 0.
    pub start_index: i64,
    /// 1-based index of the last object on this page, or 0.
    pub end_index: i64,
}

impl Pagination {
    /// The envelope for page `current` of `page_size` objects out of `count`, `len` on this page.
    pub fn new(count: i64, current: i64, page_size: i64, len: i64) -> Pagination {
        let total_pages = if count == 0 {
            1
        } else {
            (count + page_size - 1) / page_size
        };
        let start_index = if len == 0 {
            0
        } else {
            (current - 1) * page_size + 1
        };
        Pagination {
            next: if current < total_pages {
                current + 1
            } else {
                0
            },
            previous: if current > 1 { current - 1 } else { 0 },
            count,
            current,
            total_pages,
            start_index,
            end_index: if len == 0 { 0 } else { start_index + len - 1 },
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    /// Where this page sits.
    pub pagination: Pagination,
    /// The objects.
    pub results: Vec<T>,
    /// Autocomplete hints (always empty in Gatehouse).
    pub autocomplete: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middle_page_links_both_ways() {
        let p = Pagination::new(45, 2, 20, 20);
        assert_eq!(
            (
                p.next,
                p.previous,
                p.total_pages,
                p.start_index,
                p.end_index
            ),
            (3, 1, 3, 21, 40)
        );
    }

    #[test]
    fn empty_list_has_one_page_and_no_links() {
        let p = Pagination::new(0, 1, 20, 0);
        assert_eq!(
            (
                p.next,
                p.previous,
                p.total_pages,
                p.start_index,
                p.end_index
            ),
            (0, 0, 1, 0, 0)
        );
    }
}
