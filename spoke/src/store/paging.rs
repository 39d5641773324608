//! Counted pages of a filtered list, newest first, read a chunk at a time: the console's
//! inbox (cursors are arrival numbers) and its list of sent documents (cursors are message
//! ids, whose UUIDv7 order is the order the documents were queued) page the same way.
//!
//! A page says how many entries match in all and where it stands among them, so the whole
//! index is walked to count; memory holds one chunk and the page, never the whole table.

use caravan_common::store::StoreError;

/// Where a page of a filtered list starts (newest first), by cursor `C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAt<C = u64> {
    /// The newest matches.
    Newest,
    /// The matches older than this cursor (the next, older page).
    Before(C),
    /// The matches just newer than this cursor (the previous, newer page).
    After(C),
}

/// One page of a filtered list, newest first, and where it stands among all matches.
#[derive(Debug)]
pub struct Page<C, R> {
    /// The page's entries with their cursors, newest first.
    pub records: Vec<(C, R)>,
    /// How many entries match in all.
    pub matching: u64,
    /// How many matches are newer than this page (the page shows `newer + 1` onwards).
    pub newer: u64,
    /// The cursor to ask for the next, older page with (`PageAt::Before`), if there is one.
    pub older_from: Option<C>,
    /// The cursor to ask for the previous, newer page with (`PageAt::After`), if there is one.
    pub newer_from: Option<C>,
}

impl<C, R> Default for Page<C, R> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            matching: 0,
            newer: 0,
            older_from: None,
            newer_from: None,
        }
    }
}

/// Entries read for a page at a time.
pub(super) const CHUNK: usize = 256;

/// A page of at most `want` entries for which `keep` holds, newest first, starting `at`, with
/// the count of all matches and the cursors of the pages on either side. `chunk(before)`
/// reads at most [`CHUNK`] entries older than `before` (from the newest with `None`), newest
/// first; fewer than [`CHUNK`] means the list ends there.
pub(super) fn counted_page<C: Copy + Ord, R>(
    at: PageAt<C>,
    want: usize,
    chunk: &mut impl FnMut(Option<C>) -> Result<Vec<(C, R)>, StoreError>,
    keep: &impl Fn(&R) -> bool,
) -> Result<Page<C, R>, StoreError> {
    let want = want.max(1);
    let mut page = Page::default();
    let mut window = std::collections::VecDeque::with_capacity(want);
    let mut older_exists = false;
    let mut before: Option<C> = None;
    loop {
        let read = chunk(before)?;
        let full = read.len() >= CHUNK;
        for (cursor, record) in read {
            before = Some(cursor);
            if !keep(&record) {
                continue;
            }
            page.matching += 1;
            let in_range = match at {
                PageAt::Newest => true,
                PageAt::Before(b) => cursor < b,
                PageAt::After(a) => cursor > a,
            };
            match at {
                PageAt::Before(_) if !in_range => page.newer += 1,
                PageAt::After(_) if !in_range => older_exists = true,
                // Scanning newest first: the matches just after the cursor are the last ones
                // seen above it, so the window keeps the latest `want`.
                PageAt::After(_) => {
                    if window.len() == want {
                        window.pop_front();
                        page.newer += 1;
                    }
                    window.push_back((cursor, record));
                }
                _ if window.len() < want => window.push_back((cursor, record)),
                _ => older_exists = true,
            }
        }
        if !full {
            break;
        }
    }
    if let PageAt::After(_) = at
        && window.len() < want
        && page.newer == 0
        && older_exists
    {
        // Fewer than a page above the cursor: the previous page is the newest one.
        return counted_page(PageAt::Newest, want, chunk, keep);
    }
    page.records = window.into();
    page.older_from = page
        .records
        .last()
        .map(|(c, _)| *c)
        .filter(|_| older_exists);
    page.newer_from = page
        .records
        .first()
        .map(|(c, _)| *c)
        .filter(|_| page.newer > 0);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages over the numbers `1..=n` kept by `keep`, as a store would read them.
    fn pages(n: u64, at: PageAt, want: usize, keep: impl Fn(&u64) -> bool) -> Page<u64, u64> {
        let mut chunk = |before: Option<u64>| {
            let top = before.map_or(n, |b| b - 1);
            Ok((1..=top).rev().take(CHUNK).map(|c| (c, c)).collect())
        };
        counted_page(at, want, &mut chunk, &keep).unwrap()
    }

    #[test]
    fn pages_walk_both_ways_and_count_every_match_across_chunks() {
        let even = |c: &u64| c.is_multiple_of(2);
        // 1000 entries, 500 even, over four chunks.
        let first = pages(1000, PageAt::Newest, 100, even);
        assert_eq!(first.matching, 500);
        assert_eq!(first.newer, 0);
        assert_eq!(first.records.first().unwrap().0, 1000);
        assert_eq!(first.records.last().unwrap().0, 802);
        assert_eq!(first.older_from, Some(802));
        assert_eq!(first.newer_from, None);
        let second = pages(1000, PageAt::Before(802), 100, even);
        assert_eq!(second.newer, 100);
        assert_eq!(second.records.first().unwrap().0, 800);
        assert_eq!(second.newer_from, Some(800));
        let back = pages(1000, PageAt::After(800), 100, even);
        assert_eq!(back.records.first().unwrap().0, 1000);
        assert_eq!(back.records.last().unwrap().0, 802);
        // The last page has no older link.
        let last = pages(1000, PageAt::Before(202), 100, even);
        assert_eq!(last.records.len(), 100);
        assert_eq!(last.older_from, None);
        // Nearly at the top: the previous page is the newest whole page.
        let near = pages(1000, PageAt::After(990), 100, even);
        assert_eq!(near.records.len(), 100);
        assert_eq!(near.newer, 0);
        assert_eq!(near.records.first().unwrap().0, 1000);
        // Nothing matches.
        let none = pages(1000, PageAt::Newest, 100, |_| false);
        assert!(none.records.is_empty() && none.matching == 0 && none.older_from.is_none());
    }
}
