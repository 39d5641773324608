//! The XML writer the document writers share: quick-xml underneath, so that every text and
//! attribute value is escaped (`<`, `>`, `&`, `'`, `"`; `]]>` comes out as `]]&gt;`), UTF-8,
//! indented. Text reaching it has passed the field checks: no character XML 1.0 cannot hold.

use std::io;

use quick_xml::{
    Writer,
    events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event},
};

pub(super) struct Xml {
    writer: Writer<Vec<u8>>,
    /// The first write that failed (writing into memory does not, but nothing is unwrapped).
    error: Option<io::Error>,
}

impl Xml {
    /// A document with its XML declaration.
    pub(super) fn new() -> Self {
        let mut x = Self {
            writer: Writer::new_with_indent(Vec::new(), b' ', 2),
            error: None,
        };
        x.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        x
    }

    fn event(&mut self, event: Event<'_>) {
        if self.error.is_none()
            && let Err(e) = self.writer.write_event(event)
        {
            self.error = Some(e);
        }
    }

    /// Open `name` with `attrs`.
    pub(super) fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for a in attrs {
            start.push_attribute(*a);
        }
        self.event(Event::Start(start));
    }

    pub(super) fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name attrs>text</name>`, the text escaped.
    pub(super) fn leaf_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.event(Event::Text(BytesText::new(text)));
        self.close(name);
    }

    pub(super) fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_with(name, &[], text);
    }

    /// `<name attrs/>`.
    pub(super) fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let mut start = BytesStart::new(name);
        for a in attrs {
            start.push_attribute(*a);
        }
        self.event(Event::Empty(start));
    }

    /// The bytes, ending in a new line.
    pub(super) fn finish(mut self) -> io::Result<Vec<u8>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut bytes = self.writer.into_inner();
        bytes.push(b'\n');
        Ok(bytes)
    }
}
