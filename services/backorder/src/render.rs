//! The one rendering layer: every command answers with sections (a table, a record or a document) of cells
//! that are JSON values, printed as aligned text, CSV or JSON. JSON keeps numbers as numbers and booleans as
//! booleans; text and CSV show them as words.

use std::io::{self, Write};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for a person.
    Table,
    /// One JSON value (an object for replies of several sections).
    Json,
    /// Comma-separated, with a header row (a blank line and the section's name between sections).
    Csv,
}

/// Column names and rows of cells, one cell per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len(), "{:?}", self.columns);
        self.rows.push(row);
    }

    /// The cell of `column` in every row, for tests and callers that pick one figure.
    pub fn column(&self, column: &str) -> Vec<&Value> {
        let Some(i) = self.columns.iter().position(|c| *c == column) else {
            return Vec::new();
        };
        self.rows.iter().filter_map(|row| row.get(i)).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Table(Table),
    /// Named fields of one thing, in order.
    Record(Vec<(&'static str, Value)>),
    /// A value shown whole: pretty JSON (or the text itself, for a string).
    Document(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: &'static str,
    pub body: Body,
    /// A record whose fields are the reply's own: in JSON they stand beside the other sections instead of
    /// under the section's name (`{"order_id": .., "lines": [..]}`).
    pub inline: bool,
}

/// What a command prints on stdout, and notes for a person on stderr (never mixed into the data).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    pub sections: Vec<Section>,
    pub notes: Vec<String>,
}

impl Output {
    pub fn section(mut self, name: &'static str, body: Body) -> Self {
        self.sections.push(Section {
            name,
            body,
            inline: false,
        });
        self
    }

    /// The reply's own fields, as a record titled `name` in text and CSV and at the top level of the JSON.
    pub fn fields(mut self, name: &'static str, fields: Vec<(&'static str, Value)>) -> Self {
        self.sections.push(Section {
            name,
            body: Body::Record(fields),
            inline: true,
        });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&Body> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.body)
    }
}

/// Writes `output` in `format`.
pub fn write(output: &Output, format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::Table => write_text(output, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, output)?;
            writeln!(out)
        }
        Format::Csv => write_csv(output, out),
    }
}

/// A cell as a person reads it: nothing for null, yes/no, rates with at most four decimals.
fn text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) if n.is_f64() => {
            let formatted = format!("{:.4}", n.as_f64().unwrap_or(f64::NAN));
            formatted
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell in CSV: like JSON's scalars, without quotes (the writer quotes what needs it).
fn csv_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_text(output: &Output, out: &mut impl Write) -> io::Result<()> {
    let titled = output.sections.len() > 1;
    for (i, section) in output.sections.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        if titled {
            writeln!(out, "{}:", section.name)?;
        }
        match &section.body {
            Body::Table(table) => write_aligned(table, out)?,
            Body::Record(fields) => {
                let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (key, value) in fields {
                    let line = format!("{key:<width$}  {}", text(value));
                    writeln!(out, "{}", line.trim_end())?;
                }
            }
            Body::Document(Value::String(s)) => writeln!(out, "{s}")?,
            Body::Document(value) => {
                serde_json::to_writer_pretty(&mut *out, value)?;
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

/// Columns as wide as their widest cell; numeric columns aligned right.
fn write_aligned(table: &Table, out: &mut impl Write) -> io::Result<()> {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| row.iter().map(text).collect())
        .collect();
    let header: Vec<String> = table.columns.iter().map(|c| c.to_uppercase()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            cells
                .iter()
                .filter_map(|row| row.get(i))
                .chain(std::iter::once(&header[i]))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            let mut values = table
                .rows
                .iter()
                .filter_map(|r| r.get(i))
                .filter(|v| !v.is_null());
            values.clone().next().is_some() && values.all(Value::is_number)
        })
        .collect();
    let line = |row: &[String]| {
        let padded: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let width = widths[i];
                if numeric[i] {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    if cells.is_empty() {
        writeln!(out, "(none)")?;
    }
    Ok(())
}

fn write_csv(output: &Output, out: &mut impl Write) -> io::Result<()> {
    let titled = output.sections.len() > 1;
    for (i, section) in output.sections.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(&mut *out);
        if titled {
            writer.write_record([section.name])?;
        }
        match &section.body {
            Body::Table(table) => {
                writer.write_record(&table.columns)?;
                for row in &table.rows {
                    writer.write_record(row.iter().map(csv_text))?;
                }
            }
            Body::Record(fields) => {
                writer.write_record(["field", "value"])?;
                for (key, value) in fields {
                    writer.write_record([key.to_string(), csv_text(value)])?;
                }
            }
            Body::Document(value) => {
                writer.write_record(["value"])?;
                writer.write_record([csv_text(value)])?;
            }
        }
        writer.flush()?;
    }
    Ok(())
}

/// JSON: one section is its body; several are one object, with the fields of inline records and the other
/// sections by name. A table is an array of objects with the columns in order, a record an object.
impl Serialize for Output {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.sections.as_slice() {
            [only] => only.body.serialize(serializer),
            sections => {
                let mut map = serializer.serialize_map(None)?;
                for section in sections {
                    match &section.body {
                        Body::Record(fields) if section.inline => {
                            for (key, value) in fields {
                                map.serialize_entry(key, value)?;
                            }
                        }
                        body => map.serialize_entry(section.name, body)?,
                    }
                }
                map.end()
            }
        }
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Body::Table(table) => {
                let mut seq = serializer.serialize_seq(Some(table.rows.len()))?;
                for row in &table.rows {
                    seq.serialize_element(&Fields(
                        table.columns.iter().copied().zip(row.iter()).collect(),
                    ))?;
                }
                seq.end()
            }
            Body::Record(fields) => {
                Fields(fields.iter().map(|(k, v)| (*k, v)).collect()).serialize(serializer)
            }
            Body::Document(value) => value.serialize(serializer),
        }
    }
}

/// An object whose keys keep their order.
struct Fields<'a>(Vec<(&'static str, &'a Value)>);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Table {
        let mut table = Table::new(&["order_id", "units", "late", "rate", "eta"]);
        table.push(vec![
            json!("SO-1"),
            json!(30),
            json!(true),
            json!(0.833333),
            Value::Null,
        ]);
        table.push(vec![
            json!("SO-10, big"),
            json!(5),
            json!(false),
            json!(1.0),
            json!("2026-11-23T00:00:00Z"),
        ]);
        table
    }

    fn render(output: &Output, format: Format) -> String {
        let mut out = Vec::new();
        write(output, format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_table_is_aligned_numbers_right_with_words_for_flags() {
        let output = Output::default().section("rows", Body::Table(sample()));
        assert_eq!(
            render(&output, Format::Table),
            "ORDER_ID    UNITS  LATE    RATE  ETA\n\
             SO-1           30  yes   0.8333\n\
             SO-10, big      5  no         1  2026-11-23T00:00:00Z\n"
        );
    }

    #[test]
    fn json_keeps_numbers_and_booleans_and_the_column_order() {
        let output = Output::default().section("rows", Body::Table(sample()));
        let text = render(&output, Format::Json);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!([
                {"order_id": "SO-1", "units": 30, "late": true, "rate": 0.833333, "eta": null},
                {"order_id": "SO-10, big", "units": 5, "late": false, "rate": 1.0,
                 "eta": "2026-11-23T00:00:00Z"},
            ])
        );
        let keys: Vec<usize> = ["order_id", "units", "late", "rate", "eta"]
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(keys.is_sorted(), "{text}");
    }

    #[test]
    fn csv_quotes_what_needs_it_and_leaves_null_empty() {
        let output = Output::default().section("rows", Body::Table(sample()));
        assert_eq!(
            render(&output, Format::Csv),
            "order_id,units,late,rate,eta\n\
             SO-1,30,true,0.833333,\n\
             \"SO-10, big\",5,false,1.0,2026-11-23T00:00:00Z\n"
        );
    }

    #[test]
    fn several_sections_are_titled_in_text_and_one_object_in_json() {
        let output = Output::default()
            .fields(
                "order",
                vec![("order_id", json!("SO-1")), ("priority", json!(-3))],
            )
            .section("lines", Body::Table(Table::new(&["line_no", "sku"])))
            .section("stock", Body::Record(vec![("on_hand", json!(2))]))
            .section("payload", Body::Document(json!({"sku": "W"})))
            .note("a note for a person");
        assert_eq!(
            render(&output, Format::Table),
            "order:\norder_id  SO-1\npriority  -3\n\nlines:\nLINE_NO  SKU\n(none)\n\n\
             stock:\non_hand  2\n\npayload:\n{\n  \"sku\": \"W\"\n}\n"
        );
        let value: Value = serde_json::from_str(&render(&output, Format::Json)).unwrap();
        assert_eq!(
            value,
            json!({"order_id": "SO-1", "priority": -3, "lines": [], "stock": {"on_hand": 2},
                   "payload": {"sku": "W"}})
        );
        assert_eq!(
            render(&output, Format::Csv),
            "order\nfield,value\norder_id,SO-1\npriority,-3\n\nlines\nline_no,sku\n\n\
             stock\nfield,value\non_hand,2\n\npayload\nvalue\n\"{\"\"sku\"\":\"\"W\"\"}\"\n"
        );
    }

    #[test]
    fn a_document_that_is_text_prints_as_itself() {
        let output = Output::default().section("payload", Body::Document(json!("ff01")));
        assert_eq!(render(&output, Format::Table), "ff01\n");
        assert_eq!(render(&output, Format::Json), "\"ff01\"\n");
    }

    #[test]
    fn a_column_is_found_by_name() {
        let table = sample();
        assert_eq!(table.column("units"), vec![&json!(30), &json!(5)]);
        assert!(table.column("nope").is_empty());
    }
}
