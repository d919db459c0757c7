//! A development certificate authority: what `strata certs create` writes, and what the tests
//! secure their clusters with. Not a PKI: keys are written unencrypted and certificates live for
//! a year, which is right for a laptop, a CI run or a compose file, and wrong for production,
//! where certificates come from the organisation's own CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::{IdentityFiles, TlsError};

/// Days a certificate from [`DevCa`] stays valid.
const VALIDITY_DAYS: i64 = 365;

/// A certificate authority whose key is held in memory, to sign node and client certificates.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PEM private key.
pub struct IssuedPem {
    pub certificate: String,
    pub key: String,
}

impl DevCa {
    pub fn new(name: &str) -> Result<Self, TlsError> {
        let mut params = base_params(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(rcgen_error)?;
        Ok(Self { issuer })
    }

    pub fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for a node: it serves TLS for `hosts` (DNS names or IP addresses) and
    /// presents itself to other nodes as `name` (its subject's common name).
    pub fn issue_node(&self, name: &str, hosts: &[String]) -> Result<IssuedPem, TlsError> {
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(rcgen_error)?;
        params.distinguished_name = base_params(name).distinguished_name;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A certificate a client presents for mutual TLS, naming `user` as its common name.
    pub fn issue_client(&self, user: &str) -> Result<IssuedPem, TlsError> {
        let mut params = base_params(user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<IssuedPem, TlsError> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let certificate = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok(IssuedPem {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn base_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
    // A day of slack before now absorbs clocks that are a little apart between machines.
    params.not_before = now - std::time::Duration::from_secs(86_400);
    params.not_after = now + std::time::Duration::from_secs(VALIDITY_DAYS as u64 * 86_400);
    params
}

fn rcgen_error(error: rcgen::Error) -> TlsError {
    TlsError::Config(format!("generating a certificate: {error}"))
}

/// The files of a dev cluster's certificates, as [`write_cluster`] lays them out.
pub struct ClusterFiles {
    /// Signs the nodes' certificates: what clients trust, and what the internal listener
    /// accepts.
    pub ca: PathBuf,
    pub nodes: Vec<IdentityFiles>,
    /// Signs the client certificate: what the client listeners' `--tls-client-ca` names. A CA of
    /// its own, so a client certificate never opens the internal listener.
    pub client_ca: PathBuf,
    pub client: IdentityFiles,
}

/// Writes `ca.pem`, `node-<i>.pem`/`node-<i>-key.pem` for nodes 1..=`nodes`, `client-ca.pem`
/// and `client.pem`/`client-key.pem` (user `client_user`, signed by `client-ca.pem`) into `dir`. Node `i` is named
/// `strata-node-<i>` and serves `localhost`, `127.0.0.1`, `::1`, `strata-<i>` (the compose
/// service name) and every name in `extra_hosts`.
pub fn write_cluster(
    dir: &Path,
    nodes: u32,
    extra_hosts: &[String],
    client_user: &str,
) -> Result<ClusterFiles, TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = DevCa::new("Strata development CA")?;
    let ca_path = dir.join("ca.pem");
    write(&ca_path, &ca.certificate_pem())?;
    let mut node_files = Vec::new();
    for node in 1..=nodes {
        let mut hosts = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
            format!("strata-{node}"),
        ];
        hosts.extend(extra_hosts.iter().cloned());
        let issued = ca.issue_node(&format!("strata-node-{node}"), &hosts)?;
        node_files.push(write_identity(dir, &format!("node-{node}"), &issued)?);
    }
    let client_ca = DevCa::new("Strata development client CA")?;
    let client_ca_path = dir.join("client-ca.pem");
    write(&client_ca_path, &client_ca.certificate_pem())?;
    let client = write_identity(dir, "client", &client_ca.issue_client(client_user)?)?;
    Ok(ClusterFiles {
        ca: ca_path,
        nodes: node_files,
        client_ca: client_ca_path,
        client,
    })
}

/// Writes `<stem>.pem` and `<stem>-key.pem`; the key readable by its owner only.
pub fn write_identity(
    dir: &Path,
    stem: &str,
    issued: &IssuedPem,
) -> Result<IdentityFiles, TlsError> {
    let files = IdentityFiles {
        certificate: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    };
    write(&files.certificate, &issued.certificate)?;
    write(&files.key, &issued.key)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| TlsError::Io {
                path: files.key.clone(),
                source,
            },
        )?;
    }
    Ok(files)
}

fn write(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
