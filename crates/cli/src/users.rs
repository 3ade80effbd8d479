//! `hanwha-delivery users add|passwd|disable`: accounts managed on
//! identity's database directly (the SQLite file in the data directory, or
//! `--database-url`), e.g. to create the first admin. Passwords come from
//! standard input or a prompt, never from the command line (which other
//! users of the machine can read).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use contracts::Role;
use identity::{domain, storage};
use platform::{Db, Location};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Identity's database (default: DATA_DIR/identity.db), as for `serve
    /// identity --database-url`.
    #[arg(long = "database-url", env = "HANWHA_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Customer,
    Owner,
    Rider,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Customer => Role::Customer,
            RoleArg::Owner => Role::Owner,
            RoleArg::Rider => Role::Rider,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create an account; the password is read from stdin or a prompt.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An owner's store (the id of an existing store).
        #[arg(long)]
        store_id: Option<i64>,
    },
    /// Set an account's password (its sessions end).
    Passwd { name: String },
    /// Disable an account: it can no longer log in and its sessions end.
    Disable { name: String },
}

/// Reads one line: with a prompt and without echo on a terminal, else the
/// first line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    domain::check_password(&password)?;
    Ok(password)
}

pub async fn run(args: Args, data_dir: &Path) -> anyhow::Result<()> {
    let location: Location = match &args.database_url {
        Some(url) => url.parse()?,
        None => Location::Sqlite(data_dir.join("identity.db")),
    };
    std::fs::create_dir_all(data_dir)?;
    let db = Db::open(&location, &identity::migrations())
        .await
        .with_context(|| format!("opening {location}"))?;
    let result = act(&db, args.action).await;
    db.close().await;
    result
}

async fn act(db: &Db, action: Action) -> anyhow::Result<()> {
    let failed = |e: identity::IdentityError| anyhow::anyhow!(e);
    match action {
        Action::Add {
            name,
            role,
            store_id,
        } => {
            let name = domain::normalize_username(&name).map_err(failed)?;
            let role = Role::from(role);
            domain::check_store(role, store_id).map_err(failed)?;
            let password = read_password(&format!("Password for {name}: "))?;
            let hash = hash(password).await?;
            let id = storage::create(db, name.clone(), hash, role, store_id)
                .await
                .map_err(failed)?;
            println!("created {} {name} (id {id})", role.as_str());
        }
        Action::Passwd { name } => {
            let account = find(db, &name).await?;
            let password = read_password(&format!("New password for {name}: "))?;
            let hash = hash(password).await?;
            storage::set_password(db, account.id, hash)
                .await
                .map_err(failed)?;
            println!("password of {name} changed; their sessions ended");
        }
        Action::Disable { name } => {
            let account = find(db, &name).await?;
            storage::disable(db, account.id, platform::clock::now_ms())
                .await
                .map_err(failed)?;
            println!(
                "{name} disabled; their sessions ended, and running services refuse their tokens \
                 within seconds"
            );
        }
    }
    Ok(())
}

async fn find(db: &Db, name: &str) -> anyhow::Result<storage::Account> {
    storage::by_name(db, name)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .with_context(|| format!("there is no user {name}"))
}

async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || identity::hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!(e))
}
