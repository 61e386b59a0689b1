//! The `vitra` command: see [`vitra::cli`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(vitra::cli::main())
}
