//! `streamit-server`: the StreamIt backend and its admin commands.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use streamit_api::Role;
use streamit_server::{Config, db};

#[derive(Parser)]
#[command(name = "streamit-server", version, about = "The StreamIt backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage accounts (works on the same DATABASE_URL as the service).
    #[command(subcommand)]
    User(UserCommand),
    /// Load-test a running server: POST /api/viewer/token and GET /api/viewer/live.
    Bench(streamit_server::bench::BenchArgs),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Approve a creator (lets them set up a stream and go live).
    Approve { username: String },
    /// Withdraw a creator's approval; a live stream of theirs ends (`revoked`)
    /// and their participant is removed from the LiveKit room.
    Revoke { username: String },
    /// Set a user's role (viewer, creator, admin); this also approves them.
    SetRole { username: String, role: String },
    /// Create a user; the password is read from STREAMIT_USER_PASSWORD or the first line of stdin.
    Create {
        username: String,
        #[arg(long, default_value = "viewer")]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a user's password and log them out everywhere; the password is read from
    /// STREAMIT_USER_PASSWORD or the first line of stdin.
    SetPassword { username: String },
    /// List users as JSON lines.
    List,
    /// Make sure a creator can log in with a given password (for `streamit-studio dev`, at
    /// every start): creates them (role creator) if missing, approves them (an existing
    /// account keeps its role), and gives them the password read from STREAMIT_USER_PASSWORD
    /// or the first line of stdin if their stored one differs, which logs them out everywhere.
    EnsureCreator {
        username: String,
        #[arg(long)]
        display_name: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamit-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamit-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => streamit_server::serve(Config::from_env()?).await,
        Command::Bench(args) => streamit_server::bench::run(args).await,
        Command::Migrate => {
            let db = open_db().await?;
            db.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => user_command(cmd).await,
    }
}

async fn open_db() -> anyhow::Result<db::Db> {
    let config = Config::from_env()?;
    db::Db::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening database {}",
                streamit_server::config::redact_url(&config.database_url)
            )
        })
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(&s.trim().to_ascii_lowercase())
        .with_context(|| format!("unknown role {s:?} (viewer, creator or admin)"))
}

fn print_user(u: &db::UserRow) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&u.to_api())?);
    Ok(())
}

/// A valid password from STREAMIT_USER_PASSWORD, else the first line of stdin (never an
/// argument: those show up in `ps`).
fn new_password() -> anyhow::Result<String> {
    let password = match std::env::var("STREAMIT_USER_PASSWORD") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if streamit_server::app::valid_password(&password).is_err() {
        bail!("password must be 8-256 characters");
    }
    Ok(password)
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    streamit_server::auth::hash_password(password)
        .map_err(|_| anyhow::anyhow!("password hashing failed"))
}

/// The hash of [`new_password`].
fn new_password_hash() -> anyhow::Result<String> {
    hash_password(&new_password()?)
}

fn valid_username(raw: &str) -> anyhow::Result<String> {
    streamit_server::app::valid_username(raw)
        .map_err(|_| anyhow::anyhow!("username must be 3-32 characters of a-z, 0-9 and _"))
}

/// A new approved user row.
fn new_user(
    username: String,
    display_name: Option<String>,
    role: Role,
    hash: String,
) -> db::UserRow {
    db::UserRow {
        id: db::new_id(),
        display_name: display_name.unwrap_or_else(|| username.clone()),
        username,
        password_hash: hash,
        role,
        is_approved: true,
        created_at: db::now_ms(),
    }
}

async fn insert_new_user(db: &db::Db, u: &db::UserRow) -> anyhow::Result<()> {
    match db.insert_user(u).await {
        Ok(()) => print_user(u),
        Err(db::DbError::Conflict) => bail!("username {:?} is taken", u.username),
        Err(e) => Err(e.into()),
    }
}

/// `user ensure-creator`: see [`UserCommand::EnsureCreator`].
async fn ensure_creator(
    db: &db::Db,
    username: &str,
    display_name: Option<String>,
) -> anyhow::Result<()> {
    let username = valid_username(username)?;
    let password = new_password()?;
    let Some(user) = db.set_role(&username, None, Some(true)).await? else {
        let u = new_user(
            username,
            display_name,
            Role::Creator,
            hash_password(&password)?,
        );
        return insert_new_user(db, &u).await;
    };
    if streamit_server::auth::verify_password(&password, &user.password_hash) {
        return print_user(&user);
    }
    let user = db
        .set_password_hash(&username, &hash_password(&password)?)
        .await?
        .with_context(|| format!("no user {username:?}"))?;
    tracing::info!(username = %user.username, "password replaced; old sessions ended");
    print_user(&user)
}

async fn user_command(cmd: UserCommand) -> anyhow::Result<()> {
    let db = open_db().await?;
    let result = async {
        match cmd {
            UserCommand::Approve { username } => {
                let name = username.trim().to_ascii_lowercase();
                let u = db.set_role(&name, None, Some(true)).await?.with_context(|| format!("no user {name:?}"))?;
                if u.role == Role::Viewer {
                    tracing::warn!(username = %u.username, "approved a viewer: approval matters only for creators");
                }
                print_user(&u)
            }
            UserCommand::Revoke { username } => {
                let name = username.trim().to_ascii_lowercase();
                let (u, ended) = db.revoke(&name).await?.with_context(|| format!("no user {name:?}"))?;
                if ended {
                    tracing::info!(username = %u.username, "the creator was live: stream ended (revoked)");
                }
                if !u.may_stream() {
                    // Their publish token outlives the approval: take them out of the room.
                    let state = streamit_server::app::AppState::new(db.clone(), Config::from_env()?);
                    if let Err(e) = streamit_server::liveness::remove_creator(&state, &u.id).await {
                        tracing::warn!(error = %e, "could not remove the creator from the LiveKit room; \
                            the server removes them when it next reconciles or they rejoin");
                    }
                }
                print_user(&u)
            }
            UserCommand::SetRole { username, role } => {
                let role = parse_role(&role)?;
                let name = username.trim().to_ascii_lowercase();
                let u = db.set_role(&name, Some(role), Some(true)).await?.with_context(|| format!("no user {name:?}"))?;
                print_user(&u)
            }
            UserCommand::Create { username, role, display_name } => {
                let role = parse_role(&role)?;
                let username = valid_username(&username)?;
                let u = new_user(username, display_name, role, new_password_hash()?);
                insert_new_user(&db, &u).await
            }
            UserCommand::EnsureCreator { username, display_name } => {
                ensure_creator(&db, &username, display_name).await
            }
            UserCommand::SetPassword { username } => {
                let name = username.trim().to_ascii_lowercase();
                let hash = new_password_hash()?;
                let u = db
                    .set_password_hash(&name, &hash)
                    .await?
                    .with_context(|| format!("no user {name:?}"))?;
                print_user(&u)
            }
            UserCommand::List => {
                for u in db.list_users().await? {
                    print_user(&u)?;
                }
                Ok(())
            }
        }
    }
    .await;
    db.close().await;
    result
}
