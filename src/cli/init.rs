//! `cairn init`: create a store.

use std::io::Write;

use clap::Args;

use cairn::compress::CompressionConfig;
use cairn::outcome::Outcome;
use cairn::rawname::RawName;
use cairn::store::Location;
use cairn::store::config::{
    DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MAX_SQLITE_PAGE_RUN, MIN_PACK_SIZE, MIN_SQLITE_PAGE_RUN,
};
use cairn::store::{InitOptions, LockMode, PackConfig, SqliteConfig, Store, StoreError};

use super::output::{human_bytes, parse_size};
use super::stdout::Out;
use super::{Ctx, print_json};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// zstd compression level for new blobs (1-22)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    compression: i32,
    /// Size at which packs are closed, e.g. 16MiB (1MiB-1GiB)
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = pack_size)]
    pack_size: u64,
    /// Bytes per chunk of a SQLite database, in whole pages, e.g. 4KiB (512B-1MiB)
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = page_run)]
    sqlite_page_run: u32,
}

fn page_run(text: &str) -> Result<u32, String> {
    let size = parse_size(text)?;
    match u32::try_from(size) {
        Ok(run) if (MIN_SQLITE_PAGE_RUN..=MAX_SQLITE_PAGE_RUN).contains(&run) => Ok(run),
        _ => Err(format!(
            "page run must be between {} and {}",
            human_bytes(MIN_SQLITE_PAGE_RUN.into()),
            human_bytes(MAX_SQLITE_PAGE_RUN.into())
        )),
    }
}

fn pack_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if (MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(format!(
            "pack size must be between {} and {}",
            human_bytes(MIN_PACK_SIZE),
            human_bytes(MAX_PACK_SIZE)
        ))
    }
}

pub fn run(ctx: &Ctx, args: InitArgs) -> anyhow::Result<Outcome> {
    let sqlite = SqliteConfig {
        page_run: args.sqlite_page_run,
    };
    let store = init_store(ctx, args.compression, args.pack_size, sqlite)?;
    let config = store.config();
    let short = config.id.get(..8).unwrap_or(&config.id);
    let root = store.location().to_string();
    let committed = format!("store {short} at {root}");
    Out::deferring().report(Outcome::Done, Some(committed), |out| {
        if ctx.json {
            let json = serde_json::json!({
                "store": location_json(store.location()),
                "id": config.id,
                "version": config.version,
            });
            print_json(out, &json)
        } else if !ctx.quiet {
            writeln!(out, "created cairn store {short} at {root}")
        } else {
            Ok(())
        }
    })
}

/// A store's location in JSON: a local path exactly (any bytes), a URL as
/// it is.
pub fn location_json(location: &Location) -> serde_json::Value {
    match location {
        Location::Local(path) => serde_json::json!(RawName::from_path(path)),
        Location::S3(url) => serde_json::json!(url.display()),
    }
}

/// Creates a store at the context's path with the given settings.
pub fn init_store(
    ctx: &Ctx,
    level: i32,
    pack_size: u64,
    sqlite: SqliteConfig,
) -> Result<Store, StoreError> {
    let options = InitOptions {
        compression: CompressionConfig {
            level,
            ..CompressionConfig::default()
        },
        pack: PackConfig {
            target_size: pack_size,
        },
        sqlite,
    };
    Store::init(&ctx.store, &options, ctx.open_options(LockMode::Shared))
}

/// Creates the default store with default settings.
pub fn init_default(ctx: &Ctx) -> Result<Store, StoreError> {
    init_store(
        ctx,
        CompressionConfig::default().level,
        DEFAULT_PACK_SIZE,
        SqliteConfig::default(),
    )
}
