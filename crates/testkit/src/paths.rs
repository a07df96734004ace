//! Where the tools installed by scripts/install.sh live. The same formulas as the script,
//! so a plain `cargo test` finds them after one install; environment variables override.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

const VERSIONS_ENV: &str = include_str!("../../../scripts/versions.env");

/// The workspace root (this crate lives at crates/testkit).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$XDG_CACHE_HOME/streamit` or `~/.cache/streamit` on Linux, as scripts/install.sh.
fn cache_dir() -> Result<PathBuf> {
    let dirs =
        directories::BaseDirs::new().context("no home directory to find the install cache in")?;
    Ok(dirs.cache_dir().join("streamit"))
}

fn pinned(name: &str) -> Result<&'static str> {
    VERSIONS_ENV
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim())
        .with_context(|| format!("{name} is not in scripts/versions.env"))
}

fn existing(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{what} not found at {}: run scripts/install.sh",
            path.display()
        )
    }
}

/// The livekit-server binary: `$STREAMIT_LIVEKIT_SERVER`, else the install cache.
pub fn livekit_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_LIVEKIT_SERVER") {
        return existing(
            PathBuf::from(p),
            "livekit-server ($STREAMIT_LIVEKIT_SERVER)",
        );
    }
    let version = pinned("LIVEKIT_SERVER_VERSION")?;
    existing(
        cache_dir()?.join(format!(
            "livekit-server-{version}/bin/livekit-server{}",
            std::env::consts::EXE_SUFFIX
        )),
        "livekit-server",
    )
}

/// The venv Python that has the LiveKit SDK: `$STREAMIT_VIEWER_PYTHON`, else the install cache.
pub fn viewer_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_VIEWER_PYTHON") {
        return existing(PathBuf::from(p), "viewer python ($STREAMIT_VIEWER_PYTHON)");
    }
    let req = repo_root().join("tests/viewer/requirements.txt");
    let bytes = std::fs::read(&req).with_context(|| format!("reading {}", req.display()))?;
    let hash = format!("{:x}", Sha256::digest(&bytes));
    let venv = cache_dir()?.join(format!("viewer-venv-{}", &hash[..12]));
    existing(venv.join(".complete"), "the viewer venv")?;
    existing(venv.join("bin/python"), "the viewer venv's python")
}

/// schemathesis (the contract test), in the same venv as the viewer's Python:
/// `$STREAMIT_SCHEMATHESIS`, else beside [`viewer_python`].
pub fn schemathesis_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_SCHEMATHESIS") {
        return existing(PathBuf::from(p), "schemathesis ($STREAMIT_SCHEMATHESIS)");
    }
    let python = viewer_python()?;
    let bin = python
        .parent()
        .context("the venv's python has no directory")?
        .join(format!("schemathesis{}", std::env::consts::EXE_SUFFIX));
    existing(bin, "schemathesis (in the test venv)")
}

/// Debian's chromium (what the browser tests drive): `$STREAMIT_CHROMIUM`, else
/// `/usr/bin/chromium` (scripts/install.sh installs the `chromium` package).
pub fn chromium_bin() -> Result<PathBuf> {
    match std::env::var_os("STREAMIT_CHROMIUM") {
        Some(p) => existing(PathBuf::from(p), "chromium ($STREAMIT_CHROMIUM)"),
        None => existing(PathBuf::from("/usr/bin/chromium"), "chromium"),
    }
}

/// The node_modules scripts/install.sh made with `npm ci` for the package in `dir` (relative
/// to the repo root), kept in the cache under `<name>-<lock hash>`: `$<env>`, else there.
fn npm_modules(env: &str, dir: &str, name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if p.is_dir() {
            Ok(p)
        } else {
            bail!("{} (${env}) is not a directory", p.display())
        };
    }
    let lock = repo_root().join(dir).join("package-lock.json");
    let bytes = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let hash = format!("{:x}", Sha256::digest(&bytes));
    let root = cache_dir()?.join(format!("{name}-{}", &hash[..12]));
    existing(
        root.join(".complete"),
        &format!("the npm packages of {dir}"),
    )?;
    Ok(root.join("node_modules"))
}

/// playwright-core for tests/browser/driver.mjs.
pub fn browser_node_modules() -> Result<PathBuf> {
    npm_modules(
        "STREAMIT_BROWSER_NODE_MODULES",
        "tests/browser",
        "browser-node",
    )
}

/// esbuild and livekit-client for the watch pages (crates/server/web).
pub fn web_node_modules() -> Result<PathBuf> {
    npm_modules("STREAMIT_WEB_NODE_MODULES", "crates/server/web", "web-node")
}
