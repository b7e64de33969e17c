//! Lint findings about a config file: what is wrong, the JSON pointer of the offending node and
//! where it stands in the YAML text.

use std::fmt;

/// A 1-based line and column in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The start of the file: where findings about the file as a whole are reported.
    pub const START: Location = Location { line: 1, column: 1 };
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of mistake a [`Diagnostic`] reports; stable identifiers for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticCode {
    /// The file is larger than a config may be.
    TooLarge,
    /// The text is not well-formed YAML.
    YamlSyntax,
    /// A mapping names the same key twice.
    DuplicateKey,
    /// A YAML feature a config may not use: tags, non-string keys, non-finite numbers.
    UnsupportedYaml,
    /// A key the config language does not have (usually a typo).
    UnknownKey,
    /// A value of the wrong type, pattern, range or shape.
    InvalidValue,
    /// A model or event name declared twice.
    DuplicateName,
    /// `parents` or `forModels` names a model that is not declared.
    UnknownModel,
    /// An embedded `schema` that is not a valid JSON Schema 2020-12 or can not be compiled safely.
    InvalidSchema,
    /// The tenant slug is missing and can not be taken from the file name, or is used twice.
    InvalidTenant,
}

impl DiagnosticCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::YamlSyntax => "yaml_syntax",
            Self::DuplicateKey => "duplicate_key",
            Self::UnsupportedYaml => "unsupported_yaml",
            Self::UnknownKey => "unknown_key",
            Self::InvalidValue => "invalid_value",
            Self::DuplicateName => "duplicate_name",
            Self::UnknownModel => "unknown_model",
            Self::InvalidSchema => "invalid_schema",
            Self::InvalidTenant => "invalid_tenant",
        }
    }
}

impl fmt::Display for DiagnosticCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: DiagnosticCode,
    /// JSON pointer of the offending node in the config document (`""` for the whole document).
    pub pointer: String,
    /// Where the offending key or value starts in the YAML text.
    pub location: Location,
    /// What is wrong, in lower case without a trailing period.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if !self.pointer.is_empty() {
            write!(f, " (at {})", self.pointer)?;
        }
        Ok(())
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub(crate) fn push_token(pointer: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{escaped}")
}
