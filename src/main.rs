//! The `vitra` command.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use vitra::codec;

/// vitra: cooperative databases run by smart contracts, compatible with JS Vitra 0.1.3.
#[derive(Parser)]
#[command(name = "vitra", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode a JSON value as MessagePack exactly as JS Vitra (msgpackr 1.5.2) writes it, in hex.
    ///
    /// JSON conventions: {"$undefined": true}, {"$buffer": "<hex>"}, {"$date": ms},
    /// {"$number": "NaN"}.
    ///
    /// Example: vitra pack '{"op": "INCREMENT", "amount": 1}'
    Pack {
        /// The value, as JSON.
        json: String,
    },
    /// Decode MessagePack (hex) into JSON, e.g. an oplog block or an index value.
    ///
    /// Example: vitra unpack de0002a26f70a9494e4352454d454e54a6616d6f756e7401
    Unpack {
        /// The bytes, as hex.
        hex: String,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Pack { json } => {
            let parsed: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("invalid JSON: {e}"))?;
            println!("{}", hex::encode(codec::encode(&codec::from_json(&parsed))));
        }
        Command::Unpack { hex: text } => {
            let bytes = hex::decode(text.trim()).map_err(|e| format!("invalid hex: {e}"))?;
            let value = codec::decode(&bytes).map_err(|e| e.to_string())?;
            println!("{}", codec::to_json(&value));
        }
    }
    Ok(())
}
