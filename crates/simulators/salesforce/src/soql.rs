//! The SOQL subset the simulator understands:
//! `SELECT f, … FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST]] [LIMIT n]
//! [OFFSET n]`, where a condition is `field op literal` (`= != <> < <= > >= LIKE`) or `field IN
//! (…)`, combined with `AND`, `OR`, `NOT` and parentheses. Literals: `'text'` (with `\'`), numbers,
//! `true`/`false`/`null`, unquoted datetimes (`2026-01-01T00:00:00Z`) and dates. Keywords and
//! field names are case-insensitive, as are text comparisons.

use std::cmp::Ordering;

use serde_json::Value;

use crate::store::{Kind, ObjectSpec, Record, SfFault, SfResult, parse_time};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    Comma,
    Open,
    Close,
}

fn malformed(msg: impl Into<String>) -> SfFault {
    SfFault::new(400, "MALFORMED_QUERY", msg)
}

fn lex(q: &str) -> SfResult<Vec<Tok>> {
    let b = q.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(malformed("unterminated string literal")),
                        Some(b'\\') => {
                            // SOQL's escapes are one ASCII character; anything else (a
                            // character of several bytes included) is malformed, as Salesforce
                            // answers.
                            let escaped = match b.get(i + 1) {
                                Some(b'n' | b'N') => '\n',
                                Some(b'r' | b'R') => '\r',
                                Some(b't' | b'T') => '\t',
                                Some(b'b' | b'B') => '\u{8}',
                                Some(b'f' | b'F') => '\u{c}',
                                Some(n @ (b'"' | b'\'' | b'\\' | b'_' | b'%')) => *n as char,
                                _ => {
                                    return Err(malformed(
                                        "invalid escape sequence in a string literal",
                                    ));
                                }
                            };
                            s.push(escaped);
                            i += 2;
                        }
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => {
                            // Copy one UTF-8 character.
                            let ch = q[i..].chars().next().unwrap_or('\u{fffd}');
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1;
            }
            '!' if b.get(i + 1) == Some(&b'=') => {
                out.push(Tok::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                let two = b.get(i + 1).copied();
                let op = match (c, two) {
                    ('<', Some(b'=')) => "<=",
                    ('>', Some(b'=')) => ">=",
                    ('<', Some(b'>')) => "!=",
                    ('<', _) => "<",
                    _ => ">",
                };
                // Every two-character operator ("<=", ">=", "<>") is two bytes long.
                i += op.len();
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '+' => {
                let start = i;
                while i < b.len() {
                    let d = b[i] as char;
                    // Datetime literals carry ':' and '+'/'-' offsets.
                    if d.is_ascii_alphanumeric() || matches!(d, '_' | '.' | ':' | '-' | '+') {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let w = &q[start..i];
                match w.parse::<f64>() {
                    Ok(n) if !w.contains(':') => out.push(Tok::Num(n)),
                    _ => out.push(Tok::Word(w.to_owned())),
                }
            }
            other => return Err(malformed(format!("unexpected token: '{other}'"))),
        }
    }
    Ok(out)
}

/// A literal of the query.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Text(String),
    Time(time::OffsetDateTime),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp {
        field: String,
        op: &'static str,
        value: Lit,
    },
    In {
        field: String,
        values: Vec<Lit>,
        negated: bool,
    },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    pub filter: Option<Cond>,
    pub order: Option<(String, bool, bool)>,
    pub limit: Option<usize>,
    pub offset: usize,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> SfResult<()> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(malformed(format!(
                "expecting '{kw}', found '{}'",
                self.describe()
            )))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "EOF".into(),
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => n.to_string(),
            Some(Tok::Op(o)) => (*o).into(),
            Some(Tok::Comma) => ",".into(),
            Some(Tok::Open) => "(".into(),
            Some(Tok::Close) => ")".into(),
        }
    }

    fn ident(&mut self) -> SfResult<String> {
        match self.next() {
            Some(Tok::Word(w)) if is_ident(&w) => Ok(w),
            _ => {
                self.pos -= 1;
                Err(malformed(format!(
                    "unexpected token: '{}'",
                    self.describe()
                )))
            }
        }
    }

    fn literal(&mut self) -> SfResult<Lit> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Text(s)),
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Lit::Null),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            Some(Tok::Word(w)) => {
                if let Some(t) = parse_time(&w) {
                    return Ok(Lit::Time(t));
                }
                if time::Date::parse(
                    &w,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .is_ok()
                {
                    return Ok(Lit::Text(w));
                }
                Err(malformed(format!("unexpected token: '{w}'")))
            }
            _ => {
                self.pos -= 1;
                Err(malformed(format!(
                    "unexpected token: '{}'",
                    self.describe()
                )))
            }
        }
    }

    fn or(&mut self) -> SfResult<Cond> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> SfResult<Cond> {
        let mut left = self.unary()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> SfResult<Cond> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let c = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')'"));
            }
            return Ok(c);
        }
        let field = self.ident()?;
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            if self.next() != Some(Tok::Open) {
                return Err(malformed("expecting '(' after IN"));
            }
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.literal()?);
            }
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expecting ')'"));
            }
            return Ok(Cond::In {
                field,
                values,
                negated,
            });
        }
        if negated {
            return Err(malformed("expecting IN after NOT"));
        }
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("LIKE") => "LIKE",
            _ => {
                self.pos -= 1;
                return Err(malformed(format!(
                    "unexpected token: '{}'",
                    self.describe()
                )));
            }
        };
        Ok(Cond::Cmp {
            field,
            op,
            value: self.literal()?,
        })
    }
}

/// A field name, or a parent relationship path (`Account.Name`).
fn is_ident(w: &str) -> bool {
    w.split('.').all(|seg| {
        let mut chars = seg.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn count(p: &mut Parser) -> SfResult<usize> {
    match p.next() {
        Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
        _ => Err(malformed("expecting a non-negative integer")),
    }
}

/// Parses a query; `MALFORMED_QUERY` on syntax it does not know.
pub fn parse(q: &str) -> SfResult<Query> {
    let mut p = Parser {
        toks: lex(q)?,
        pos: 0,
    };
    p.expect_kw("SELECT")?;
    let mut fields = vec![p.ident()?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        fields.push(p.ident()?);
    }
    p.expect_kw("FROM")?;
    let object = p.ident()?;
    let filter = if p.keyword("WHERE") {
        Some(p.or()?)
    } else {
        None
    };
    let order = if p.keyword("ORDER") {
        p.expect_kw("BY")?;
        let f = p.ident()?;
        let desc = if p.keyword("DESC") {
            true
        } else {
            p.keyword("ASC");
            false
        };
        // Salesforce's default: nulls first ascending, last descending.
        let mut nulls_first = !desc;
        if p.keyword("NULLS") {
            nulls_first = if p.keyword("FIRST") {
                true
            } else {
                p.expect_kw("LAST")?;
                false
            };
        }
        Some((f, desc, nulls_first))
    } else {
        None
    };
    let limit = if p.keyword("LIMIT") {
        Some(count(&mut p)?)
    } else {
        None
    };
    let offset = if p.keyword("OFFSET") {
        count(&mut p)?
    } else {
        0
    };
    if p.peek().is_some() {
        return Err(malformed(format!("unexpected token: '{}'", p.describe())));
    }
    Ok(Query {
        fields,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

fn no_such_column(field: &str, object: &str) -> SfFault {
    SfFault::new(
        400,
        "INVALID_FIELD",
        format!(
            "No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

impl Query {
    /// Canonical field names for the object; `INVALID_FIELD` for unknown ones.
    pub fn resolve(&mut self, spec: &ObjectSpec) -> SfResult<()> {
        let canon = |f: &mut String| -> SfResult<()> {
            let (c, _) = spec.field(f).ok_or_else(|| no_such_column(f, spec.name))?;
            *f = c.to_owned();
            Ok(())
        };
        for f in &mut self.fields {
            match f.split_once('.') {
                // A parent's field: the relationship is its reference field without `Id`; the
                // parent's field is checked against the parent's object when rows are read.
                Some((rel, rest)) => {
                    let reference = spec
                        .field(&format!("{rel}Id"))
                        .filter(|(_, k)| matches!(k, Kind::Reference(_)))
                        .map(|(name, _)| name.trim_end_matches("Id").to_owned())
                        .ok_or_else(|| {
                            SfFault::new(
                                400,
                                "INVALID_FIELD",
                                format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                            )
                        })?;
                    *f = format!("{reference}.{rest}");
                }
                None => canon(f)?,
            }
        }
        if let Some((f, _, _)) = &mut self.order {
            canon(f)?;
        }
        fn walk(c: &mut Cond, canon: &dyn Fn(&mut String) -> SfResult<()>) -> SfResult<()> {
            match c {
                Cond::Cmp { field, .. } | Cond::In { field, .. } => canon(field),
                Cond::And(a, b) | Cond::Or(a, b) => {
                    walk(a, canon)?;
                    walk(b, canon)
                }
                Cond::Not(a) => walk(a, canon),
            }
        }
        if let Some(c) = &mut self.filter {
            walk(c, &canon)?;
        }
        Ok(())
    }

    /// Whether a record satisfies the filter.
    pub fn matches(&self, r: &Record) -> bool {
        self.filter.as_ref().is_none_or(|c| eval(c, r))
    }

    /// Orders records by the ORDER BY clause (stable; by id otherwise).
    pub fn sort(&self, rows: &mut [&Record]) {
        if let Some((field, desc, nulls_first)) = &self.order {
            rows.sort_by(|a, b| {
                let (va, vb) = (a.get(field, ""), b.get(field, ""));
                match (va.is_null(), vb.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if *nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if *nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (false, false) => {
                        let o = compare(&va, &lit_of(&vb)).unwrap_or(Ordering::Equal);
                        if *desc { o.reverse() } else { o }
                    }
                }
            });
        }
    }
}

fn lit_of(v: &Value) -> Lit {
    match v {
        Value::Null => Lit::Null,
        Value::Bool(b) => Lit::Bool(*b),
        Value::Number(n) => Lit::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => parse_time(s)
            .map(Lit::Time)
            .unwrap_or_else(|| Lit::Text(s.clone())),
        other => Lit::Text(other.to_string()),
    }
}

/// Compares a stored value with a literal; `None` when they cannot be compared.
fn compare(v: &Value, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Lit::Null) => None,
        (Value::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(a), Lit::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::String(a), Lit::Num(b)) => a.parse::<f64>().ok()?.partial_cmp(b),
        (Value::String(a), Lit::Time(b)) => Some(parse_time(a)?.cmp(b)),
        (Value::String(a), Lit::Text(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Number(a), Lit::Text(b)) => a.as_f64()?.partial_cmp(&b.parse::<f64>().ok()?),
        _ => None,
    }
}

fn like(value: &str, pattern: &str) -> bool {
    // `%` any run, `_` one character; case-insensitive.
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => {
                v.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(&v[1..], rest)
            }
        }
    }
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&v, &p)
}

fn eval(c: &Cond, r: &Record) -> bool {
    match c {
        Cond::And(a, b) => eval(a, r) && eval(b, r),
        Cond::Or(a, b) => eval(a, r) || eval(b, r),
        Cond::Not(a) => !eval(a, r),
        Cond::In {
            field,
            values,
            negated,
        } => {
            let v = r.get(field, "");
            let hit = values
                .iter()
                .any(|l| compare(&v, l) == Some(Ordering::Equal));
            hit != *negated
        }
        Cond::Cmp { field, op, value } => {
            let v = r.get(field, "");
            if *op == "LIKE" {
                return match (&v, value) {
                    (Value::String(s), Lit::Text(p)) => like(s, p),
                    _ => false,
                };
            }
            let o = compare(&v, value);
            match *op {
                "=" => o == Some(Ordering::Equal),
                "!=" => o != Some(Ordering::Equal),
                "<" => o == Some(Ordering::Less),
                "<=" => matches!(o, Some(Ordering::Less | Ordering::Equal)),
                ">" => o == Some(Ordering::Greater),
                ">=" => matches!(o, Some(Ordering::Greater | Ordering::Equal)),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Found by `cargo xtask fuzz` (target `soql`): a backslash before a character of several
    /// bytes made the tokenizer slice inside it and panic.
    #[test]
    fn an_escape_is_one_ascii_character_and_anything_else_is_malformed() {
        for bad in [
            "SESELECT'C\\\u{663}]",
            "SELECT Id FROM Contact WHERE Name = 'O\\é'",
            "SELECT Id FROM Contact WHERE Name = 'x\\q'",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, "MALFORMED_QUERY", "{bad}");
        }
        let q = parse("SELECT Id FROM Contact WHERE Name = 'a\\nb\\\\c\\'d\\%'").unwrap();
        let Some(Cond::Cmp { value, .. }) = &q.filter else {
            panic!("{:?}", q.filter)
        };
        assert_eq!(value, &Lit::Text("a\nb\\c'd%".into()));
        assert!(parse("SELECT Id FROM Contact WHERE Name = 'Zoë'").is_ok());
    }

    #[test]
    fn parses_the_documented_shapes() {
        let q = parse("SELECT Id, Name FROM Account WHERE SystemModstamp > 2026-01-01T00:00:00Z AND (Name = 'O\\'Brien' OR Name LIKE 'Ac%') ORDER BY SystemModstamp ASC LIMIT 10").unwrap();
        assert_eq!(q.fields, ["Id", "Name"]);
        assert_eq!(q.object, "Account");
        assert_eq!(q.limit, Some(10));
        assert!(matches!(q.filter, Some(Cond::And(..))));
        assert!(parse("select id from contact where email in ('a@x.com','b@x.com')").is_ok());
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "",
            "SELECT FROM Contact",
            "SELECT Id Contact",
            "SELECT Id FROM Contact WHERE",
            "SELECT Id FROM Contact WHERE Name = 'open",
            "SELECT Id FROM Contact LIMIT x",
            "SELECT Id FROM Contact GROUP BY Name",
            "SELECT Id FROM Contact WHERE Name ~ 'x'",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, "MALFORMED_QUERY", "{bad}");
        }
    }

    #[test]
    fn like_matches_with_wildcards_case_insensitively() {
        assert!(like("Acme Corp", "ac%"));
        assert!(like("Acme", "A_me"));
        assert!(!like("Acme", "A_e"));
    }
}
