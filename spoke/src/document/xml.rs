//! A small element tree of a recognised XML document, by local names, for reading what it says.
//!
//! Why a tree: parties, goods lines and attachments are groups of elements read together (a
//! name with its country, a description with its HS code and weights), which paths over a tree
//! say plainly; the labelled fields an officer checks are read from the same tree, so a
//! document is parsed once. Depth is capped, so neither building nor dropping a hostile
//! document can exhaust the stack, and so is the number of elements.

use quick_xml::{events::Event, reader::NsReader};

use super::DocumentError;

/// Elements nested deeper than this are refused (real documents nest about 12 levels).
pub const MAX_DEPTH: usize = 128;

/// Documents with more elements than this are refused, which bounds the tree's memory (about
/// 150 MB at worst); an invoice of 10,000 lines has about 500,000.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// One element: its local name, attributes (local names), text and children, in order.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// Every element at `path` (local names below `self`), in document order.
    pub fn all<'a>(&'a self, path: &str) -> Vec<&'a Element> {
        let mut found = vec![self];
        for step in path.split('/').filter(|s| !s.is_empty()) {
            found = found
                .into_iter()
                .flat_map(|e| e.children.iter().filter(move |c| c.name == step))
                .collect();
        }
        found
    }

    /// The first element at `path`.
    pub fn at(&self, path: &str) -> Option<&Element> {
        self.all(path).into_iter().next()
    }

    /// The text of the first element at `path` that has some, whitespace collapsed.
    pub fn text(&self, path: &str) -> Option<String> {
        self.all(path).into_iter().find_map(Element::own_text)
    }

    /// Every non-empty text at `path`.
    pub fn texts(&self, path: &str) -> Vec<String> {
        self.all(path)
            .into_iter()
            .filter_map(Element::own_text)
            .collect()
    }

    /// This element's text, whitespace collapsed; none when empty.
    pub fn own_text(&self) -> Option<String> {
        let text = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        (!text.is_empty()).then_some(text)
    }

    /// The text of this element and of every element inside it (children after the
    /// element's own text: what an element with mixed content interleaves is not kept).
    pub fn deep_text(&self) -> String {
        let mut text = self.text.clone();
        for child in &self.children {
            text.push_str(&child.deep_text());
        }
        text
    }

    /// The value of an attribute, by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// Read `xml` into a tree; the root element is returned.
pub fn parse(xml: &[u8]) -> Result<Element, DocumentError> {
    let mut reader = NsReader::from_reader(xml);
    let mut buf = Vec::new();
    // The open elements; the finished root ends up alone in `done`.
    let mut open: Vec<Element> = Vec::new();
    let mut done: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let position = reader.buffer_position();
        let malformed = |e: quick_xml::Error| DocumentError::NotWellFormed {
            position,
            message: e.to_string(),
        };
        let (_, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(malformed)?;
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                if open.len() >= MAX_DEPTH {
                    return Err(DocumentError::TooDeep { limit: MAX_DEPTH });
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(DocumentError::TooManyElements {
                        limit: MAX_ELEMENTS,
                    });
                }
                let element = Element {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    attributes: e
                        .attributes()
                        .flatten()
                        .filter_map(|a| {
                            let value = a.unescape_value().ok()?.into_owned();
                            Some((
                                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                                value,
                            ))
                        })
                        .collect(),
                    ..Element::default()
                };
                if matches!(event, Event::Start(_)) {
                    open.push(element);
                } else {
                    close(&mut open, &mut done, element);
                }
            }
            Event::End(_) => {
                if let Some(element) = open.pop() {
                    close(&mut open, &mut done, element);
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| malformed(e.into()))?;
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(|e| malformed(e.into()))?;
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => r
                        .decode()
                        .ok()
                        .and_then(|n| quick_xml::escape::resolve_predefined_entity(&n))
                        .unwrap_or_default()
                        .to_owned(),
                };
                if let Some(e) = open.last_mut() {
                    e.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    done.ok_or(DocumentError::NoRoot)
}

fn close(open: &mut [Element], done: &mut Option<Element>, element: Element) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None => {
            done.get_or_insert(element);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_texts_and_attributes() {
        let root = parse(
            br#"<a:R xmlns:a="u"><a:P><a:N> x  y </a:N><a:C code="KZ"/></a:P><a:P><a:N>z</a:N></a:P></a:R>"#,
        )
        .unwrap();
        assert_eq!(root.name, "R");
        assert_eq!(root.texts("P/N"), ["x y", "z"]);
        assert_eq!(root.at("P/C").and_then(|c| c.attribute("code")), Some("KZ"));
        assert_eq!(root.text("P/Missing"), None);
    }

    #[test]
    fn nesting_beyond_the_cap_is_refused() {
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            parse(deep.as_bytes()).unwrap_err(),
            DocumentError::TooDeep { limit: MAX_DEPTH }
        );
        let fine = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(fine.as_bytes()).is_ok());
        let wide = format!("<r>{}</r>", "<a/>".repeat(MAX_ELEMENTS));
        assert_eq!(
            parse(wide.as_bytes()).unwrap_err(),
            DocumentError::TooManyElements {
                limit: MAX_ELEMENTS
            }
        );
    }
}
