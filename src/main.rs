//! The `zhw` binary: everything lives in the library; see [`zhw::cli`].

fn main() -> std::process::ExitCode {
    zhw::cli::main()
}
