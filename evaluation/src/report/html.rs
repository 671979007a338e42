//! A minimal HTML writer for the report: escaped text, tables, notes for missing parts and
//! inline PNG images (base64 data URIs), with the page's CSS inline. No JavaScript.

use base64::Engine as _;

/// The page's style sheet, inlined in `<head>`.
const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1b1b1b;\
background:#fff;max-width:1400px}\
h1{font-size:1.6em;border-bottom:2px solid #0b5cad;padding-bottom:4px}\
h2{font-size:1.3em;margin-top:1.6em;color:#0b5cad}\
h3{font-size:1.1em;margin-top:1.2em}\
h4{font-size:1em;margin:1em 0 0.3em 0}\
table{border-collapse:collapse;margin:8px 0 16px 0;font-size:0.9em}\
th,td{border:1px solid #c8c8c8;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#eef3f9}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
p.missing{color:#8a4b00;background:#fff6e5;border-left:4px solid #e0a030;padding:6px 10px}\
pre{background:#f5f5f5;padding:8px;overflow-x:auto;font-size:0.85em}\
img.curve{max-width:100%;border:1px solid #ddd}\
img.panel{image-rendering:pixelated;width:256px;border:1px solid #444;background:#000}\
figure{display:inline-block;margin:4px}\
figcaption{font-size:0.85em;text-align:center}\
span.swatch{display:inline-block;width:12px;height:12px;border:1px solid #333;\
margin-right:4px;vertical-align:middle}\
";

/// Escapes `&`, `<`, `>`, `"` and `'` for text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// `data:image/png;base64,...` for PNG bytes.
pub fn png_data_uri(png: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(png);
    format!("data:image/png;base64,{encoded}")
}

/// One table cell: text (escaped when written), right-aligned when numeric, or raw HTML.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Plain text.
    Text(String),
    /// A number or `mean ± std`, right-aligned.
    Number(String),
    /// Markup written as is (built by this module's helpers from escaped parts).
    Html(String),
}

/// An HTML document being written, section by section.
#[derive(Debug, Default)]
pub struct Page {
    body: String,
}

impl Page {
    /// A heading of `level` (1 to 4).
    pub fn heading(&mut self, level: u8, text: &str) {
        let level = level.clamp(1, 4);
        self.body
            .push_str(&format!("<h{level}>{}</h{level}>\n", escape(text)));
    }

    /// A paragraph of text.
    pub fn paragraph(&mut self, text: &str) {
        self.body.push_str(&format!("<p>{}</p>\n", escape(text)));
    }

    /// A plainly marked note that something is missing or could not be read.
    pub fn missing(&mut self, text: &str) {
        self.body
            .push_str(&format!("<p class=\"missing\">{}</p>\n", escape(text)));
    }

    /// Preformatted text (a log tail, a TOML file).
    pub fn preformatted(&mut self, text: &str) {
        self.body
            .push_str(&format!("<pre>{}</pre>\n", escape(text)));
    }

    /// A table with a header row.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<Cell>]) {
        self.body.push_str("<table>\n<tr>");
        for h in header {
            self.body.push_str(&format!("<th>{}</th>", escape(h)));
        }
        self.body.push_str("</tr>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                self.body.push_str(&cell_html(cell));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    /// An inline PNG image with a CSS class and alternative text.
    pub fn image(&mut self, png: &[u8], class: &str, alt: &str) {
        self.body.push_str(&image_html(png, class, alt));
        self.body.push('\n');
    }

    /// Markup built by this module's helpers (e.g. [`image_html`] figures).
    pub fn raw(&mut self, html: &str) {
        self.body.push_str(html);
    }

    /// The whole document, titled `title`.
    pub fn finish(self, title: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(title),
            self.body
        )
    }
}

fn cell_html(cell: &Cell) -> String {
    match cell {
        Cell::Text(text) => format!("<td>{}</td>", escape(text)),
        Cell::Number(text) => format!("<td class=\"num\">{}</td>", escape(text)),
        Cell::Html(html) => format!("<td>{html}</td>"),
    }
}

/// `<img>` markup for PNG bytes.
pub fn image_html(png: &[u8], class: &str, alt: &str) -> String {
    format!(
        "<img class=\"{}\" alt=\"{}\" src=\"{}\">",
        escape(class),
        escape(alt),
        png_data_uri(png)
    )
}

/// A colour swatch and a label name, for legends.
pub fn swatch_html(colour: [u8; 3], name: &str) -> String {
    let [r, g, b] = colour;
    format!(
        "<span class=\"swatch\" style=\"background:rgb({r},{g},{b})\"></span>{}",
        escape(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;"
        );
        let mut page = Page::default();
        page.heading(2, "<script>");
        page.table(
            &["x<y"],
            &[vec![Cell::Number("1 ± 2".into()), Cell::Text("&".into())]],
        );
        page.missing("no plans.toml yet");
        let html = page.finish("r&d");
        assert!(html.contains("<h2>&lt;script&gt;</h2>"));
        assert!(html.contains("<th>x&lt;y</th>"));
        assert!(html.contains("<td class=\"num\">1 ± 2</td><td>&amp;</td>"));
        assert!(html.contains("<p class=\"missing\">no plans.toml yet</p>"));
        assert!(html.contains("<title>r&amp;d</title>"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn images_are_base64_data_uris() {
        // RFC 4648 test vector: "foobar" -> "Zm9vYmFy".
        assert_eq!(png_data_uri(b"foobar"), "data:image/png;base64,Zm9vYmFy");
        assert_eq!(
            image_html(b"fo", "panel", "axial"),
            "<img class=\"panel\" alt=\"axial\" src=\"data:image/png;base64,Zm8=\">"
        );
    }
}
