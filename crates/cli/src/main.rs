use std::process::ExitCode;

fn main() -> ExitCode {
    // Unlocked handles: the server logs to stderr from other threads while a command runs.
    let code = functionary_cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    ExitCode::from(code)
}
