//! Thin binary: everything lives in the library; exit codes are mapped in `cli::main`.
fn main() -> std::process::ExitCode {
    wafload::cli::main()
}
