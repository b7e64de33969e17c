//! `functionary check PATH...`: lints config files and folders of config files.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use functionary_config::{
    ConfigFile, Diagnostic, DiagnosticCode, Location, ReadError, config_files_in, load_config,
    read_config_file,
};
use serde::Serialize;

use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Config files, or folders whose *.yaml and *.yml files are checked.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format: `text` prints `file:line:column: message (at /pointer)` per error;
    /// `json` prints one JSON array of all errors; `github` prints GitHub Actions workflow
    /// commands, so errors show up as annotations on the pull request.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Github,
}

/// One error as `--format json` prints it.
#[derive(Debug, Serialize)]
struct JsonFinding<'a> {
    file: String,
    line: usize,
    column: usize,
    pointer: &'a str,
    code: &'a str,
    message: &'a str,
}

pub(crate) fn run(args: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut io_failed = false;
    let mut files = Vec::new();
    for path in &args.paths {
        match expand(path) {
            Ok(found) => files.extend(found),
            Err(message) => {
                io_failed = true;
                let _ = writeln!(err, "{}: {message}", path.display());
            }
        }
    }

    let mut findings: Vec<(PathBuf, Diagnostic)> = Vec::new();
    let mut tenants: HashMap<String, PathBuf> = HashMap::new();
    for path in &files {
        match read_config_file(path) {
            Ok(file) => lint_file(&file, &mut tenants, &mut findings),
            Err(ReadError::Io(error)) => {
                io_failed = true;
                let _ = writeln!(err, "{}: {error}", path.display());
            }
            Err(refused) => findings.push((path.clone(), whole_file(refused.to_string()))),
        }
    }

    let printed = match args.format {
        Format::Text => print_text(&findings, out),
        Format::Json => print_json(&findings, out),
        Format::Github => print_github(&findings, out),
    };
    let failed_files = {
        let mut paths: Vec<&PathBuf> = findings.iter().map(|(path, _)| path).collect();
        paths.dedup();
        paths.len()
    };
    let _ = writeln!(
        err,
        "checked {} file{}: {} error{} in {} file{}",
        files.len(),
        plural(files.len()),
        findings.len(),
        plural(findings.len()),
        failed_files,
        plural(failed_files),
    );
    if io_failed || printed.is_err() {
        EXIT_USAGE
    } else if findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    }
}

/// The config files a path names: the file itself, or the configs directly inside a folder.
fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_dir() {
        let files = config_files_in(path).map_err(|error| error.to_string())?;
        if files.is_empty() {
            return Err("folder holds no *.yaml or *.yml files".to_owned());
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_owned()])
    } else {
        Err("no such file or folder".to_owned())
    }
}

fn lint_file(
    file: &ConfigFile,
    tenants: &mut HashMap<String, PathBuf>,
    findings: &mut Vec<(PathBuf, Diagnostic)>,
) {
    match load_config(&file.text, &file.stem) {
        Ok(config) => {
            if let Some(first) = tenants.get(config.tenant()) {
                findings.push((
                    file.path.clone(),
                    whole_file(format!(
                        "tenant `{}` is also declared by {}: one file per tenant",
                        config.tenant(),
                        first.display()
                    )),
                ));
            } else {
                tenants.insert(config.tenant().to_owned(), file.path.clone());
            }
        }
        Err(diagnostics) => {
            findings.extend(
                diagnostics
                    .into_iter()
                    .map(|found| (file.path.clone(), found)),
            );
        }
    }
}

fn whole_file(message: String) -> Diagnostic {
    Diagnostic {
        code: DiagnosticCode::InvalidTenant,
        pointer: String::new(),
        location: Location::START,
        message,
    }
}

fn print_text(findings: &[(PathBuf, Diagnostic)], out: &mut dyn Write) -> std::io::Result<()> {
    for (path, finding) in findings {
        writeln!(out, "{}:{finding}", path.display())?;
    }
    Ok(())
}

fn print_json(findings: &[(PathBuf, Diagnostic)], out: &mut dyn Write) -> std::io::Result<()> {
    let rows: Vec<JsonFinding<'_>> = findings
        .iter()
        .map(|(path, finding)| JsonFinding {
            file: path.display().to_string(),
            line: finding.location.line,
            column: finding.location.column,
            pointer: &finding.pointer,
            code: finding.code.as_str(),
            message: &finding.message,
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)
}

fn print_github(findings: &[(PathBuf, Diagnostic)], out: &mut dyn Write) -> std::io::Result<()> {
    // Workflow command syntax: properties escape `%`, CR, LF, `:` and `,`; the message `%`, CR, LF.
    let escape_data = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_property = |text: &str| escape_data(text).replace(':', "%3A").replace(',', "%2C");
    for (path, finding) in findings {
        let pointer = if finding.pointer.is_empty() {
            String::new()
        } else {
            format!(" (at {})", finding.pointer)
        };
        writeln!(
            out,
            "::error file={},line={},col={},title={}::{}{}",
            escape_property(&path.display().to_string()),
            finding.location.line,
            finding.location.column,
            escape_property(&format!("functionary check: {}", finding.code)),
            escape_data(&finding.message),
            escape_data(&pointer),
        )?;
    }
    Ok(())
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
