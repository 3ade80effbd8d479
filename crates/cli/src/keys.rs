//! Where each process gets its signing and verifying keys. Identity alone
//! signs users' tokens (HANWHA_TOKEN_KEY_FILE); every other service
//! verifies them with public keys (HANWHA_TOKEN_PUBLIC_KEYS). Order signs
//! its own calls to Payment and Store (HANWHA_SERVICE_KEY_FILE), which
//! check them with HANWHA_SERVICE_PUBLIC_KEYS. The all-in-one makes its key
//! in the data directory on first start.

use std::path::{Path, PathBuf};

use anyhow::Context;
use platform::service::ServiceDescription;
use platform::signing_keys::{self, PrivateKey, PublicKey};
use platform::{ServiceSigner, TokenKeys};

/// How to make a key, for the messages that ask for one.
const HOW_TO_MAKE_KEYS: &str = "make a key pair with `hanwha-delivery keys generate --out DIR` \
     (writes DIR/token.key, readable by its owner only, and DIR/token.pub)";

#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Identity (and the all-in-one): the Ed25519 private key that signs
    /// users' tokens, a PKCS#8 PEM file readable by its owner only. The
    /// all-in-one default is DATA_DIR/token.key, created on first start.
    #[arg(long, env = "HANWHA_TOKEN_KEY_FILE", global = true)]
    pub token_key_file: Option<PathBuf>,
    /// Public keys whose tokens are accepted, comma-separated, each a PEM
    /// file path or an inline PEM. Needed by every service but identity;
    /// identity accepts its own key and these (keys being rotated out).
    #[arg(long, env = "HANWHA_TOKEN_PUBLIC_KEYS", global = true)]
    pub token_public_keys: Option<String>,
    /// Order: the Ed25519 private key that signs its calls to Payment and
    /// Store.
    #[arg(long, env = "HANWHA_SERVICE_KEY_FILE", global = true)]
    pub service_key_file: Option<PathBuf>,
    /// Payment and Store: the public keys of the services allowed to call
    /// their internal endpoints (order's service key).
    #[arg(long, env = "HANWHA_SERVICE_PUBLIC_KEYS", global = true)]
    pub service_public_keys: Option<String>,
    /// Every service but identity: where identity runs, asked every few
    /// seconds for the accounts disabled since (their tokens are refused).
    #[arg(
        long,
        env = "HANWHA_IDENTITY_URL",
        default_value = "http://127.0.0.1:8087",
        global = true
    )]
    pub identity_url: String,
    /// Refused: shared-secret (HS256) tokens are gone.
    #[arg(long, env = "HANWHA_TOKEN_SECRET", global = true, hide = true)]
    pub token_secret: Option<String>,
}

impl KeyArgs {
    /// Refuses the old shared secret, saying what replaces it.
    pub fn refuse_shared_secret(&self) -> anyhow::Result<()> {
        if self.token_secret.is_some() {
            anyhow::bail!(
                "HANWHA_TOKEN_SECRET is no longer accepted: tokens are signed with an Ed25519 key \
                 that only identity holds. Unset it; {HOW_TO_MAKE_KEYS}, give identity \
                 HANWHA_TOKEN_KEY_FILE=DIR/token.key and every other service \
                 HANWHA_TOKEN_PUBLIC_KEYS=DIR/token.pub (the all-in-one needs nothing: it makes \
                 its key in the data directory)"
            );
        }
        Ok(())
    }

    fn also_accepted(&self) -> anyhow::Result<Vec<PublicKey>> {
        match &self.token_public_keys {
            Some(list) => {
                signing_keys::parse_public_keys(list).context("reading HANWHA_TOKEN_PUBLIC_KEYS")
            }
            None => Ok(Vec::new()),
        }
    }

    /// The all-in-one: signs with the configured key or with the one in the
    /// data directory, created there on first start.
    pub fn all_in_one(&self, data_dir: &Path) -> anyhow::Result<TokenKeys> {
        self.refuse_shared_secret()?;
        let key = match &self.token_key_file {
            Some(path) => PrivateKey::read(path)?,
            None => PrivateKey::read_or_create(&data_dir.join("token.key"))?,
        };
        Ok(TokenKeys::issuer(key, self.also_accepted()?))
    }

    /// A service in the distributed shape: the one that holds the accounts
    /// signs; the others verify.
    pub fn for_service(&self, service: &ServiceDescription) -> anyhow::Result<TokenKeys> {
        if service.holds_accounts {
            self.identity()
        } else {
            self.verifier(service.name)
        }
    }

    /// Identity in the distributed shape: signs with its configured key.
    fn identity(&self) -> anyhow::Result<TokenKeys> {
        self.refuse_shared_secret()?;
        let path = self.token_key_file.as_ref().with_context(|| {
            format!("identity needs HANWHA_TOKEN_KEY_FILE, the key that signs tokens: {HOW_TO_MAKE_KEYS}")
        })?;
        Ok(TokenKeys::issuer(
            PrivateKey::read(path)?,
            self.also_accepted()?,
        ))
    }

    /// Any other service: verifies with the configured public keys; Payment
    /// and Store also accept the service keys' tokens addressed to them.
    fn verifier(&self, service: &str) -> anyhow::Result<TokenKeys> {
        self.refuse_shared_secret()?;
        let accepted = self.also_accepted()?;
        if accepted.is_empty() {
            anyhow::bail!(
                "{service} needs HANWHA_TOKEN_PUBLIC_KEYS, the public key(s) of identity's token \
                 key (e.g. DIR/token.pub; identity also publishes them at \
                 /.well-known/jwks.json): {HOW_TO_MAKE_KEYS}"
            );
        }
        let services = match &self.service_public_keys {
            Some(list) => signing_keys::parse_public_keys(list)
                .context("reading HANWHA_SERVICE_PUBLIC_KEYS")?,
            None => Vec::new(),
        };
        Ok(TokenKeys::verifier(accepted).with_services(service, services))
    }

    /// Order in the distributed shape: its own key for its calls.
    pub fn service_signer(&self, service: &str) -> anyhow::Result<ServiceSigner> {
        let path = self.service_key_file.as_ref().with_context(|| {
            format!(
                "{service} needs HANWHA_SERVICE_KEY_FILE, the key that signs its calls to payment \
                 and store: make one with `hanwha-delivery keys generate --out DIR --name service` \
                 and give payment and store HANWHA_SERVICE_PUBLIC_KEYS=DIR/service.pub"
            )
        })?;
        Ok(ServiceSigner::new(service, PrivateKey::read(path)?))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 key pair: NAME.key (PKCS#8 PEM, mode 0600) and
    /// NAME.pub (the public key to give the verifiers).
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// File name of the pair: `token` for identity's key, `service` for
        /// order's.
        #[arg(long, default_value = "token")]
        name: String,
        /// Leave an existing pair as it is and succeed, for a container
        /// that makes the keys on first start only (compose.yaml). Without
        /// it an existing key is an error: a key is never overwritten.
        #[arg(long)]
        if_missing: bool,
    },
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate {
            out,
            name,
            if_missing,
        } => {
            let private = out.join(format!("{name}.key"));
            if if_missing && private.exists() {
                println!("{} exists: kept", private.display());
                return Ok(());
            }
            let public = signing_keys::generate_pair(&out, &name)?;
            println!(
                "wrote {} (private, 0600) and {} (public, kid {})",
                out.join(format!("{name}.key")).display(),
                out.join(format!("{name}.pub")).display(),
                public.kid
            );
            Ok(())
        }
    }
}

/// The keys a local fleet makes for its children (kept in its directory so
/// that a restart keeps accepting earlier tokens).
pub struct FleetKeys {
    dir: PathBuf,
}

impl FleetKeys {
    pub fn in_dir(fleet_dir: &Path) -> anyhow::Result<FleetKeys> {
        let dir = fleet_dir.join("keys");
        for name in ["token", "service"] {
            if !dir.join(format!("{name}.key")).exists() {
                signing_keys::generate_pair(&dir, name)?;
            }
        }
        Ok(FleetKeys { dir })
    }

    /// The environment a child running `service` needs: private keys only
    /// where they are used (read from the list: who holds the accounts,
    /// who calls whom).
    pub fn env_for(&self, service: &str) -> Vec<(&'static str, PathBuf)> {
        let file = |name: &str| self.dir.join(name);
        let mut env = vec![("HANWHA_TOKEN_PUBLIC_KEYS", file("token.pub"))];
        let Some(service) = services::named(service) else {
            return env;
        };
        if service.holds_accounts {
            env.push(("HANWHA_TOKEN_KEY_FILE", file("token.key")));
        }
        if !service.calls.is_empty() {
            env.push(("HANWHA_SERVICE_KEY_FILE", file("service.key")));
        }
        if services::ALL
            .iter()
            .any(|s| s.calls.contains(&service.name))
        {
            env.push(("HANWHA_SERVICE_PUBLIC_KEYS", file("service.pub")));
        }
        env
    }
}
