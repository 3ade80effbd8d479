//! What a request for a list may ask, read the same way by every service:
//! a status filter (a status the service does not know is a 400, not an
//! empty list) and a page (bounded, so no request reads a whole table).

use crate::ApiError;

/// The status asked for, if any, as the service's `parse` knows it.
pub fn status_filter<T>(
    asked: Option<&str>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    asked
        .map(|s| parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown status {s}"))))
        .transpose()
}

/// A page of a list, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// At most 1000 items (100 unless asked), from `offset` (0 unless asked).
    pub fn of(limit: Option<i64>, offset: Option<i64>) -> Page {
        Page {
            limit: limit.unwrap_or(100).clamp(1, 1000),
            offset: offset.unwrap_or(0).max(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<u8> {
        (s == "Ready").then_some(1)
    }

    #[test]
    fn an_unknown_status_is_a_bad_request_and_none_is_no_filter() {
        assert_eq!(status_filter(None, parse).expect("none"), None);
        assert_eq!(status_filter(Some("Ready"), parse).expect("known"), Some(1));
        let e = status_filter(Some("Mystery"), parse).expect_err("unknown");
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.detail, "unknown status Mystery");
    }

    #[test]
    fn a_page_is_bounded() {
        assert_eq!(
            Page::of(None, None),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(
            Page::of(Some(0), Some(-5)),
            Page {
                limit: 1,
                offset: 0
            }
        );
        assert_eq!(
            Page::of(Some(5000), Some(7)),
            Page {
                limit: 1000,
                offset: 7
            }
        );
    }
}
