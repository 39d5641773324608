//! `keygen`, `token` and `officer-password`: the secrets a spoke's config names.

use std::path::PathBuf;

use caravan_common::signing::SigningKey;

use crate::{EX_USAGE, Failure};

#[derive(clap::Args)]
pub struct Keygen {
    /// Where to write the key; an existing file is never overwritten.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

impl Keygen {
    pub fn run(self) -> Result<(), Failure> {
        let Self { out, json } = self;
        let key = SigningKey::generate();
        key.save(&out).map_err(|e| Failure(1, e.to_string()))?;
        // The public half, for the hub operator (`caravan-hub admin key register --public-key`).
        let mut public = out.clone().into_os_string();
        public.push(".pub");
        let public = PathBuf::from(public);
        std::fs::write(&public, format!("{}\n", key.public().to_base64()))
            .map_err(|e| Failure(1, format!("{}: {e}", public.display())))?;
        if json {
            caravan_common::out!(
                "{}",
                serde_json::json!({
                    "key_id": key.key_id().to_string(),
                    "public_key": key.public().to_base64(),
                    "file": out.display().to_string(),
                    "public_key_file": public.display().to_string(),
                })
            );
        } else {
            caravan_common::out!("key id:     {}", key.key_id());
            caravan_common::out!("public key: {}", key.public().to_base64());
            caravan_common::out!(
                "written to: {} (mode 0600); public key in {}",
                out.display(),
                public.display()
            );
        }
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct Token {
    /// The client's name, for the logs.
    #[arg(long)]
    name: String,
    #[arg(long)]
    out: PathBuf,
}

impl Token {
    pub fn run(self) -> Result<(), Failure> {
        let (token, hash) = caravan_spoke::api::nsw::new_token();
        caravan_common::signing::write_secret_file(&self.out, format!("{token}\n").as_bytes())
            .map_err(|e| Failure(1, e.to_string()))?;
        caravan_common::out!(
            "[[nsw.tokens]]\nname = {:?}\nsha256 = \"{hash}\"",
            self.name
        );
        Ok(())
    }
}

#[derive(clap::Args)]
pub struct OfficerPassword {
    #[arg(long)]
    user: String,
}

impl OfficerPassword {
    pub fn run(self) -> Result<(), Failure> {
        let user = self.user;
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .map_err(|e| Failure(1, e.to_string()))?;
        let password = password.trim_end_matches(['\n', '\r']);
        if password.len() < 8 {
            return Err(Failure(
                EX_USAGE,
                "the password must have at least 8 characters".into(),
            ));
        }
        let hash = caravan_spoke::api::console::hash_password(password);
        caravan_common::out!("[[console.officers]]\nuser = {user:?}\npassword_hash = \"{hash}\"");
        Ok(())
    }
}
