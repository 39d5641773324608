//! How the commands end: exit codes and the one-line error report on stderr.

use std::process::ExitCode;

use caravan_hub::Config;

/// Exit code for a bad configuration or command line (sysexits EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// Exit code when the store is damaged and the hub will not start on it (EX_DATAERR).
pub const EX_DATAERR: u8 = 65;

/// 0 if the command did its work, 1 with the error on stderr.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caravan-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// For the checks (`log verify`, `store check`): 0 if all holds, 1 if not, and 1 with the
/// error on stderr if the check could not run.
pub fn verdict(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("caravan-hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The hub's config, its problems as the error.
pub fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}
