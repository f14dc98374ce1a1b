//! Certificates the TLS tests make for servers of their own (NATS, PostgreSQL): a CA, a certificate for
//! `localhost` and `127.0.0.1` it signed, client certificates, and a second CA nobody trusts.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The certificates of one test, as PEM files in its scratch folder.
pub struct Pki {
    pub ca: PathBuf,
    /// A CA nobody here trusts: the server and the clients must refuse what it signed.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

fn ca(name: &str) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// (certificate, key) signed by `issuer`, for `names` (subject alternative names) with `common_name`.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(String, String)> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(dir: &Path, name: &str, pem: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

impl Pki {
    pub fn make(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (ca_pem, issuer) = ca("backorder test CA")?;
        let (other_ca_pem, other_issuer) = ca("some other CA")?;
        let (server_cert, server_key) = leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            &issuer,
            &[],
            "order-intake",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let (other_client_cert, other_client_key) = leaf(
            &other_issuer,
            &[],
            "order-intake",
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self {
            ca: write(dir, "ca.crt", &ca_pem)?,
            other_ca: write(dir, "other-ca.crt", &other_ca_pem)?,
            server_cert: write(dir, "server.crt", &server_cert)?,
            server_key: write(dir, "server.key", &server_key)?,
            client_cert: write(dir, "client.crt", &client_cert)?,
            client_key: write(dir, "client.key", &client_key)?,
            other_client_cert: write(dir, "other-client.crt", &other_client_cert)?,
            other_client_key: write(dir, "other-client.key", &other_client_key)?,
        })
    }
}
