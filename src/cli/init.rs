//! `cairn init`: create a store.

use std::io::Write;

use clap::Args;

use cairn::compress::CompressionConfig;
use cairn::crypt::keyfile::KdfCost;
use cairn::outcome::Outcome;
use cairn::rawname::RawName;
use cairn::store::Location;
use cairn::store::config::{
    DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MAX_SQLITE_PAGE_RUN, MIN_PACK_SIZE, MIN_SQLITE_PAGE_RUN,
};
use cairn::store::{InitOptions, LockMode, NewKeys, PackConfig, SqliteConfig, Store, StoreError};

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
    /// Encrypt the store (the default for s3:// stores); the password comes from --password-file, --password-command or a prompt
    #[arg(long, conflicts_with = "no_encrypt")]
    encrypt: bool,
    /// Do not encrypt an s3:// store
    #[arg(long)]
    no_encrypt: bool,
    #[command(flatten)]
    kdf: KdfArgs,
}

/// The cost of turning a password into its key (argon2id).
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Memory for deriving the password's key, in MiB [default: 64]
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    kdf_memory: Option<u32>,
    /// Passes for deriving the password's key [default: 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    kdf_iterations: Option<u32>,
}

impl KdfArgs {
    /// The cost asked for, the defaults where not.
    pub fn cost(&self) -> KdfCost {
        let default = KdfCost::default();
        KdfCost {
            memory_kib: self.kdf_memory.map_or(default.memory_kib, |m| m * 1024),
            iterations: self.kdf_iterations.unwrap_or(default.iterations),
        }
    }
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
    let encrypt = wants_encryption(ctx, &args)?;
    let settings = Settings {
        level: args.compression,
        pack_size: args.pack_size,
        sqlite,
        keys: match encrypt {
            true => NewKeys::Fresh(args.kdf.cost()),
            false => NewKeys::Plain,
        },
    };
    let store = init_store(ctx, settings)?;
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
                "encrypted": config.is_encrypted(),
            });
            print_json(out, &json)
        } else if !ctx.quiet {
            let how = if config.is_encrypted() {
                "encrypted "
            } else {
                ""
            };
            writeln!(out, "created {how}cairn store {short} at {root}")
        } else {
            Ok(())
        }
    })
}

/// Whether the new store is encrypted: asked with --encrypt, or by giving
/// a password, or by default for a remote store (it lives on someone
/// else's disks); --no-encrypt opts out, and then no password may be given.
fn wants_encryption(ctx: &Ctx, args: &InitArgs) -> Result<bool, super::Usage> {
    if args.no_encrypt && ctx.password_given() {
        return Err(super::Usage(
            "--no-encrypt with a password (--password-file, --password-command or their CAIRN_ variables): give one or the other".into(),
        ));
    }
    let remote = matches!(ctx.store, Location::S3(_));
    Ok(args.encrypt || ctx.password_given() || (remote && !args.no_encrypt))
}

/// A store's location in JSON: a local path exactly (any bytes), a URL as
/// it is.
pub fn location_json(location: &Location) -> serde_json::Value {
    match location {
        Location::Local(path) => serde_json::json!(RawName::from_path(path)),
        Location::S3(url) => serde_json::json!(url.display()),
    }
}

/// What a new store is made with.
pub struct Settings {
    /// zstd level.
    pub level: i32,
    /// Pack target size.
    pub pack_size: u64,
    /// Database chunking.
    pub sqlite: SqliteConfig,
    /// Whether and how to encrypt.
    pub keys: NewKeys,
}

/// Creates a store at the context's path with the given settings.
pub fn init_store(ctx: &Ctx, settings: Settings) -> Result<Store, StoreError> {
    let options = InitOptions {
        compression: CompressionConfig {
            level: settings.level,
            ..CompressionConfig::default()
        },
        pack: PackConfig {
            target_size: settings.pack_size,
        },
        sqlite: settings.sqlite,
        keys: settings.keys,
    };
    let store = Store::init(&ctx.store, &options, ctx.open_options(LockMode::Shared))?;
    ctx.print_notices(&store);
    Ok(store)
}

/// Creates the default store with default settings.
pub fn init_default(ctx: &Ctx) -> Result<Store, StoreError> {
    let settings = Settings {
        level: CompressionConfig::default().level,
        pack_size: DEFAULT_PACK_SIZE,
        sqlite: SqliteConfig::default(),
        // A password given means the operator wants encryption.
        keys: match ctx.password_given() {
            true => NewKeys::Fresh(KdfCost::default()),
            false => NewKeys::Plain,
        },
    };
    init_store(ctx, settings)
}
