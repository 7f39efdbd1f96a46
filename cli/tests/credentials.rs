//! The `kmssh` binary with no credentials, or refused ones, for each cloud backend: it
//! must exit 4 quickly, naming the credential sources it tried, instead of retrying a
//! "network outage" to its deadline. Every provider's endpoints are loopback stand-ins;
//! nothing leaves the machine.

mod common;

mod aws {
    //! AWS: the SDK's default chain with nothing to find, and with refused credentials.
    //!
    //! Each credential source of the SDK's default chain against ministack behind the
    //! AWS proxy (which records the access key every request was signed with, checks the
    //! region it was signed for, and refuses the keys it is told to), with STS, the SSO
    //! portal, IMDS and the ECS endpoint served by loopback stand-ins; and every way the
    //! chain can fail, which must be exit 4 ("unauthenticated"), quickly, naming the
    //! sources tried.
    #![cfg(feature = "aws")]

    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use kmssh_conformance::aws::stand_in::{Issued, StandIn};
    use kmssh_conformance::aws::{
        AwsGate, EMULATOR_REGION, SigV4Checks, admin_client_in, create_key_arn, gated_proxy,
        sigv4_scope,
    };
    use kmssh_conformance::fault_proxy::FaultProxy;
    use kmssh_conformance::faults::Operation;
    use kmssh_conformance::ministack::Ministack;

    use super::common::{kmssh, run};

    /// How long a failure to find or use credentials may take, end to end.
    const QUICKLY: Duration = Duration::from_secs(5);

    /// A key in ministack behind a gated proxy, a temporary HOME, and the runtime the
    /// proxy and stand-ins run on.
    struct World {
        runtime: tokio::runtime::Runtime,
        proxy: FaultProxy,
        gate: AwsGate,
        arn: String,
        home: tempfile::TempDir,
    }

    impl World {
        /// A P-256 key made in `region`, reached through a proxy that expects `region`.
        fn new(region: &str) -> Self {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let ministack = Ministack::shared();
            let (proxy, gate, arn) = runtime.block_on(async {
                let admin = admin_client_in(&ministack.url(), region).await;
                let arn =
                    create_key_arn(&admin, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
                let (proxy, gate) = gated_proxy(ministack, region).await;
                (proxy, gate, arn)
            });
            let home = tempfile::tempdir().expect("tempdir");
            std::fs::create_dir_all(home.path().join(".aws")).expect("~/.aws");
            Self {
                runtime,
                proxy,
                gate,
                arn,
                home,
            }
        }

        fn home(&self) -> &Path {
            self.home.path()
        }

        /// The key's id (the last part of its ARN).
        fn key_id(&self) -> &str {
            self.arn.rsplit('/').next().expect("key id")
        }

        /// `kmssh` with none of the caller's AWS settings: HOME and the AWS config files
        /// in the temporary directory, KMS through the proxy, IMDS at a closed loopback
        /// port, the region `us-east-1`; then `vars` on top.
        fn kmssh(&self, vars: &[(&str, &str)]) -> Command {
            let mut command = kmssh();
            for (name, _) in std::env::vars() {
                if name.starts_with("AWS_") || name.starts_with("KMSSH_") {
                    command.env_remove(name);
                }
            }
            command
                .env("HOME", self.home())
                .env("AWS_CONFIG_FILE", self.home().join(".aws/config"))
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    self.home().join(".aws/credentials"),
                )
                .env("AWS_ENDPOINT_URL_KMS", self.proxy.url())
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
                .env("AWS_REGION", EMULATOR_REGION);
            for (name, value) in vars {
                command.env(name, value);
            }
            command
        }

        /// `kmssh pubkey` of `uri`: exit code, stderr, how long it took.
        fn pubkey(&self, uri: &str, vars: &[(&str, &str)]) -> (i32, String, Duration) {
            let start = Instant::now();
            let (code, _, err) = run(self.kmssh(vars).args(["pubkey", "--ca", uri]));
            (code, err, start.elapsed())
        }

        /// `kmssh pubkey` of the key by id must succeed, and every request KMS got must
        /// have been signed with `access_key_id`.
        fn signs_in_as(&self, access_key_id: &str, vars: &[(&str, &str)]) {
            let uri = format!("aws-kms:{}", self.key_id());
            let (code, err, _) = self.pubkey(&uri, vars);
            assert_eq!(code, 0, "{err}");
            let keys = self.access_keys();
            assert!(!keys.is_empty());
            assert!(
                keys.iter().all(|k| k == access_key_id),
                "signed with {keys:?}, not {access_key_id}"
            );
        }

        /// The access key ids of the requests the proxy saw.
        fn access_keys(&self) -> Vec<String> {
            self.proxy
                .requests()
                .iter()
                .filter_map(|r| sigv4_scope(&r.head).map(|s| s.access_key_id))
                .collect()
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.home().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write");
            path
        }

        /// An executable shell script `name` in the temporary HOME.
        fn script(&self, name: &str, body: &str) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.write(name, &format!("#!/bin/sh\n{body}\n"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            path
        }

        fn start<T>(&self, future: impl Future<Output = T>) -> T {
            self.runtime.block_on(future)
        }
    }

    /// A failure that must be exit 4, one line, "unauthenticated", within [`QUICKLY`].
    fn unauthenticated(code: i32, err: &str, took: Duration) {
        eprintln!("({took:?}) {}", err.trim());
        assert_eq!(code, 4, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("unauthenticated (permanent)"), "{err}");
        assert!(took < QUICKLY, "took {took:?}: {err}");
    }

    /// SHA-1 in hex, as the SSO token cache names its files (coreutils' `sha1sum`).
    fn sha1_hex(text: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("sha1sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha1sum");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("sha1sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("digest")
            .to_owned()
    }

    /// Nothing anywhere, and an instance metadata address that accepts connections but
    /// never answers (what a laptop on some networks sees): exit 4 within 5 s,
    /// "unauthenticated", naming every source tried, and KMS never called.
    #[test]
    fn no_credentials_anywhere_is_exit_4_within_5_seconds() {
        let world = World::new(EMULATOR_REGION);
        let silent = world.start(StandIn::silent());
        let uri = format!("aws-kms:{}", world.key_id());
        let (code, err, took) = world.pubkey(
            &uri,
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &silent.url())],
        );
        unauthenticated(code, &err, took);
        for source in [
            "environment",
            "profile \"default\"",
            "web identity",
            "ECS container",
            "EC2 instance metadata (IMDS)",
        ] {
            assert!(err.contains(source), "{source}: {err}");
        }
        assert!(!silent.requests().is_empty(), "IMDS was not tried: {err}");
        assert!(world.proxy.requests().is_empty(), "KMS was called: {err}");

        // A closed metadata port is quicker still, and says the same.
        let (code, err, took) = world.pubkey(&uri, &[]);
        unauthenticated(code, &err, took);
        assert!(err.contains("no AWS credentials found"), "{err}");
    }

    /// An instance metadata address that answers 503 (a proxy in the way) is asked twice,
    /// not the SDK's four times with backoff, and `AWS_METADATA_SERVICE_NUM_ATTEMPTS`
    /// changes that; either way exit 4 within 5 s.
    #[test]
    fn a_failing_metadata_service_is_asked_a_bounded_number_of_times() {
        let world = World::new(EMULATOR_REGION);
        let uri = format!("aws-kms:{}", world.key_id());
        for (attempts, expected) in [(None, 2), (Some("1"), 1)] {
            let failing = world.start(StandIn::start(|_| {
                Some((503, "text/plain", Vec::new(), "unavailable".to_owned()))
            }));
            let mut vars = vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT", failing.url())];
            if let Some(attempts) = attempts {
                vars.push(("AWS_METADATA_SERVICE_NUM_ATTEMPTS", attempts.to_owned()));
            }
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (code, err, took) = world.pubkey(&uri, &vars);
            unauthenticated(code, &err, took);
            assert!(err.contains("IMDS"), "{err}");
            assert_eq!(failing.requests().len(), expected, "{attempts:?}: {err}");
        }
        assert!(world.proxy.requests().is_empty(), "KMS was called");
    }

    /// No region anywhere (and a key id, not an ARN): exit 4 naming what to set, after
    /// one bounded look at a silent instance metadata address.
    #[test]
    fn no_region_is_a_configuration_error_quickly() {
        let world = World::new(EMULATOR_REGION);
        let silent = world.start(StandIn::silent());
        let mut command = world.kmssh(&[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &silent.url()),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        command.env_remove("AWS_REGION");
        let start = Instant::now();
        let (code, _, err) =
            run(command.args(["pubkey", "--ca", &format!("aws-kms:{}", world.key_id())]));
        let took = start.elapsed();
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("no AWS region"), "{err}");
        assert!(took < QUICKLY, "took {took:?}");
        assert!(world.proxy.requests().is_empty(), "KMS was called: {err}");
    }

    /// Environment credentials: the first source.
    #[test]
    fn environment_credentials_sign() {
        let world = World::new(EMULATOR_REGION);
        world.signs_in_as(
            "AKIDENVIRONMENT",
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT"),
                ("AWS_SECRET_ACCESS_KEY", "secret"),
            ],
        );
    }

    /// A profile with `credential_process` (aws-vault, granted, 1Password…): needs
    /// aws-config's `credentials-process` feature.
    #[test]
    fn a_credential_process_profile_signs() {
        let world = World::new(EMULATOR_REGION);
        let script = world.script(
            "bin/credentials",
            r#"printf '{"Version":1,"AccessKeyId":"AKIDPROCESS","SecretAccessKey":"s","SessionToken":"t","Expiration":"2099-01-01T00:00:00Z"}'"#,
        );
        world.write(
            ".aws/config",
            &format!(
                "[profile ssh-ca]\nregion = {EMULATOR_REGION}\ncredential_process = {}\n",
                script.display()
            ),
        );
        world.signs_in_as("AKIDPROCESS", &[("AWS_PROFILE", "ssh-ca")]);
    }

    /// A `credential_process` that fails (a locked vault) is exit 4, quickly, with its
    /// reason, and KMS is never called.
    #[test]
    fn a_failing_credential_process_is_unauthenticated() {
        let world = World::new(EMULATOR_REGION);
        let script = world.script("bin/credentials", "echo 'vault is locked' >&2; exit 1");
        world.write(
            ".aws/config",
            &format!(
                "[profile ssh-ca]\ncredential_process = {}\n",
                script.display()
            ),
        );
        let uri = format!("aws-kms:{}", world.key_id());
        let (code, err, took) = world.pubkey(&uri, &[("AWS_PROFILE", "ssh-ca")]);
        unauthenticated(code, &err, took);
        assert!(err.contains("vault is locked"), "{err}");
        assert!(err.contains("profile \"ssh-ca\""), "{err}");
        assert!(world.proxy.requests().is_empty(), "KMS was called: {err}");
    }

    /// Credentials that fail to refresh after the key was opened (the process's second
    /// answer is an error) fail the request that needed them: exit 4, never retried as
    /// an outage (the process runs exactly twice).
    #[test]
    fn a_failing_refresh_is_unauthenticated_and_not_retried() {
        let world = World::new(EMULATOR_REGION);
        let count = world.home().join("runs");
        // Credentials valid for 5 s: inside the SDK's 10 s refresh buffer whatever its
        // jitter (up to 5 s more), so the second request asks for new ones.
        let script = world.script(
            "bin/credentials",
            &format!(
                r#"echo run >> '{}'
if [ "$(wc -l < '{}')" -gt 1 ]; then echo 'session ended' >&2; exit 1; fi
printf '{{"Version":1,"AccessKeyId":"AKIDSHORT","SecretAccessKey":"s","SessionToken":"t","Expiration":"%s"}}' "$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%SZ)""#,
                count.display(),
                count.display()
            ),
        );
        world.write(
            ".aws/config",
            &format!(
                "[profile ssh-ca]\ncredential_process = {}\n",
                script.display()
            ),
        );
        let uri = format!("aws-kms:{}", world.key_id());
        let (code, err, took) = world.pubkey(&uri, &[("AWS_PROFILE", "ssh-ca")]);
        unauthenticated(code, &err, took);
        assert!(err.contains("session ended"), "{err}");
        let runs = std::fs::read_to_string(&count).expect("runs");
        assert_eq!(runs.lines().count(), 2, "{err}");
        assert_eq!(world.proxy.count(Operation::Describe), 1);
        assert_eq!(world.proxy.count(Operation::GetPublicKey), 0);
    }

    /// An SSO profile (`aws sso login`): the token from the cache file, exchanged at the
    /// SSO portal (a loopback stand-in) for role credentials. Needs aws-config's `sso`
    /// feature.
    #[test]
    fn an_sso_profile_signs_with_the_cached_token() {
        let world = World::new(EMULATOR_REGION);
        let portal = world.start(StandIn::sso_portal(
            "cached-access-token",
            Issued::new("ASIASSOROLE"),
        ));
        world.write(
            ".aws/config",
            &format!(
                "[profile ssh-ca]\nsso_session = corp\nsso_account_id = 111122223333\n\
                 sso_role_name = SSHCertificateAuthority\nregion = {EMULATOR_REGION}\n\n\
                 [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n\
                 sso_region = {EMULATOR_REGION}\nsso_registration_scopes = sso:account:access\n"
            ),
        );
        world.write(
            &format!(".aws/sso/cache/{}.json", sha1_hex("corp")),
            r#"{"startUrl":"https://corp.awsapps.com/start","region":"us-east-1","accessToken":"cached-access-token","expiresAt":"2099-01-01T00:00:00Z"}"#,
        );
        world.signs_in_as(
            "ASIASSOROLE",
            &[
                ("AWS_PROFILE", "ssh-ca"),
                ("AWS_ENDPOINT_URL_SSO", &portal.url()),
            ],
        );
        let asked = portal.requests();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(
            asked[0].0.contains("role_name=SSHCertificateAuthority"),
            "{asked:?}"
        );
    }

    /// An expired SSO token (the user has to run `aws sso login` again) is exit 4,
    /// quickly, saying so; neither the portal nor KMS is called.
    #[test]
    fn an_expired_sso_token_is_unauthenticated() {
        let world = World::new(EMULATOR_REGION);
        let portal = world.start(StandIn::sso_portal(
            "old-access-token",
            Issued::new("ASIASSOROLE"),
        ));
        world.write(
            ".aws/config",
            "[profile ssh-ca]\nsso_session = corp\nsso_account_id = 111122223333\n\
             sso_role_name = SSHCertificateAuthority\n\n\
             [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n",
        );
        world.write(
            &format!(".aws/sso/cache/{}.json", sha1_hex("corp")),
            r#"{"startUrl":"https://corp.awsapps.com/start","region":"us-east-1","accessToken":"old-access-token","expiresAt":"2020-01-01T00:00:00Z"}"#,
        );
        let uri = format!("aws-kms:{}", world.key_id());
        let (code, err, took) = world.pubkey(
            &uri,
            &[
                ("AWS_PROFILE", "ssh-ca"),
                ("AWS_ENDPOINT_URL_SSO", &portal.url()),
            ],
        );
        unauthenticated(code, &err, took);
        assert!(err.to_lowercase().contains("expired"), "{err}");
        assert!(portal.requests().is_empty());
        assert!(world.proxy.requests().is_empty(), "KMS was called: {err}");
    }

    /// Web identity (EKS service accounts, GitHub Actions OIDC): the token file exchanged
    /// at STS (a loopback stand-in) for role credentials.
    #[test]
    fn web_identity_signs_with_the_role_sts_gives() {
        let world = World::new(EMULATOR_REGION);
        let sts = world.start(StandIn::sts("oidc-token", Issued::new("ASIAWEBIDENTITY")));
        let token = world.write("token", "oidc-token");
        world.signs_in_as(
            "ASIAWEBIDENTITY",
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string()),
                ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/ssh-ca"),
                ("AWS_ENDPOINT_URL_STS", &sts.url()),
            ],
        );
        assert_eq!(sts.requests().len(), 1);
    }

    /// STS refusing the web identity token is exit 4, quickly, with STS's reason.
    #[test]
    fn sts_refusing_is_unauthenticated() {
        let world = World::new(EMULATOR_REGION);
        let sts = world.start(StandIn::sts_refusing());
        let token = world.write("token", "oidc-token");
        let uri = format!("aws-kms:{}", world.key_id());
        let (code, err, took) = world.pubkey(
            &uri,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", &token.display().to_string()),
                ("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/ssh-ca"),
                ("AWS_ENDPOINT_URL_STS", &sts.url()),
            ],
        );
        unauthenticated(code, &err, took);
        assert!(err.contains("AccessDenied"), "{err}");
        assert_eq!(sts.requests().len(), 1, "STS asked again: {err}");
        assert!(world.proxy.requests().is_empty(), "KMS was called: {err}");
    }

    /// The ECS container endpoint, then IMDS (an instance role), each a loopback
    /// stand-in.
    #[test]
    fn container_and_instance_metadata_credentials_sign() {
        let world = World::new(EMULATOR_REGION);
        let ecs = world.start(StandIn::ecs(Issued::new("ASIACONTAINER")));
        world.signs_in_as(
            "ASIACONTAINER",
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{}/v2/credentials/task", ecs.url()),
            )],
        );
        let world = World::new(EMULATOR_REGION);
        let imds = world.start(StandIn::imds(Issued::new("ASIAINSTANCE")));
        world.signs_in_as(
            "ASIAINSTANCE",
            &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())],
        );
    }

    /// Credentials AWS KMS refuses are exit 4 "unauthenticated" (an unknown key, an
    /// expired session), a known identity without permission exit 4 "permission
    /// denied"; none is retried.
    #[test]
    fn credentials_kms_refuses_are_not_retried() {
        let world = World::new(EMULATOR_REGION);
        world.gate.set_checks(SigV4Checks {
            region: Some(EMULATOR_REGION.to_owned()),
            unrecognized: vec!["AKIDUNKNOWN".to_owned()],
            expired: vec!["ASIAEXPIRED".to_owned()],
            denied: vec!["AKIDNOPERMISSION".to_owned()],
        });
        let uri = format!("aws-kms:{}", world.key_id());
        let mut before = 0;
        for (key, code_seen, kind) in [
            (
                "AKIDUNKNOWN",
                "UnrecognizedClientException",
                "unauthenticated (permanent)",
            ),
            (
                "ASIAEXPIRED",
                "ExpiredTokenException",
                "unauthenticated (permanent)",
            ),
            (
                "AKIDNOPERMISSION",
                "AccessDeniedException",
                "permission denied (permanent)",
            ),
        ] {
            let (code, err, took) = world.pubkey(
                &uri,
                &[("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", "s")],
            );
            assert_eq!(code, 4, "{err}");
            assert!(err.contains(kind) && err.contains(code_seen), "{err}");
            assert!(took < QUICKLY, "{took:?}");
            let now = world.proxy.count(Operation::Describe);
            assert_eq!(now - before, 1, "{key} was retried");
            before = now;
        }
    }

    /// A key ARN's region is used whatever `AWS_REGION` says, and when no region is set
    /// at all; the proxy refuses any request signed for another region.
    #[test]
    fn a_key_arn_is_reached_in_its_own_region() {
        let world = World::new("eu-west-1");
        let uri = format!("aws-kms:{}", world.arn);
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        let (code, err, _) = world.pubkey(&uri, &env);
        assert_eq!(code, 0, "AWS_REGION=us-east-1: {err}");
        let mut unset = world.kmssh(&env);
        unset.env_remove("AWS_REGION");
        let (code, _, err) = run(unset.args(["pubkey", "--ca", &uri]));
        assert_eq!(code, 0, "no region: {err}");
        let regions: Vec<String> = world
            .proxy
            .requests()
            .iter()
            .filter_map(|r| sigv4_scope(&r.head).map(|s| s.region))
            .collect();
        assert!(
            !regions.is_empty() && regions.iter().all(|r| r == "eu-west-1"),
            "{regions:?}"
        );

        // The same key by id, with AWS_REGION naming another region, is refused as real
        // AWS would: signed for the wrong region.
        let (code, err, _) = world.pubkey(&format!("aws-kms:{}", world.key_id()), &env);
        assert_eq!(code, 4, "{err}");
        assert!(err.contains("scoped to a valid region"), "{err}");
    }
}

/// Google Cloud: Application Default Credentials with nothing to find, and refused ones.
mod gcp {
    // Each Application Default Credentials source against the Cloud KMS emulator, the
    // key requiring the bearer token that source yields: a service account key file
    // (its self-signed JWT), an `authorized_user` file (a refresh token exchanged at a
    // loopback OAuth token endpoint named by its `token_uri`), an `external_account`
    // file (workload identity federation: a file-sourced subject token exchanged at a
    // loopback STS), gcloud's well-known file under a temporary `HOME`, and the metadata
    // server (a loopback stand-in reached through `GCE_METADATA_HOST`). With nothing to
    // find, or refused credentials, `kmssh` exits 4 within 5 s naming the sources.
    #![cfg(feature = "gcp")]

    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::Command;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use kmssh_conformance::faults::Operation;
    use kmssh_conformance::gcp::{
        WIF_AUDIENCE, authorized_user_json, external_account_json, service_account_json,
    };
    use kmssh_conformance::gcp_emulator::{
        GcpKmsEmulator, TokenAnswer, jwt_claims, metadata_server, oauth_token_endpoint,
        sts_endpoint,
    };
    use kmssh_core::Algorithm;

    use super::common::{kmssh, openssl};

    const REFRESH_TOKEN: &str = "kmssh-cli-refresh-token";

    /// A loopback port nothing listens on (bound, then released).
    fn closed_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    }

    /// A new P-256 version in the shared emulator that takes only tokens `check` accepts.
    fn key_requiring(check: impl Fn(&str) -> bool + Send + Sync + 'static) -> String {
        let emulator = GcpKmsEmulator::shared();
        let name = emulator.create_key_version(Algorithm::EcdsaP256Sha256);
        emulator.require_token_with(&name, Arc::new(check));
        name
    }

    /// `kmssh` with none of the caller's Google, gcloud or kmssh settings: `HOME` is
    /// `home`, the endpoint is the emulator, and the metadata server is a closed loopback
    /// port (nothing may reach `metadata.google.internal`).
    fn kmssh_gcp(home: &Path) -> Command {
        let mut command = kmssh();
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy().into_owned();
            if ["GOOGLE_", "GCE_", "CLOUDSDK_", "KMSSH_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
            {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", home)
            .env("KMSSH_GCP_ENDPOINT", GcpKmsEmulator::shared().url())
            .env("GCE_METADATA_HOST", closed_port().to_string());
        command
    }

    /// Runs `kmssh pubkey --ca gcp-kms:NAME` (killed after 60 s): exit code, stdout,
    /// stderr and how long it took.
    fn pubkey(mut command: Command, name: &str) -> (i32, String, String, Duration) {
        command.args(["pubkey", "--ca", &format!("gcp-kms:{name}")]);
        let started = Instant::now();
        let (code, stdout, stderr) = super::common::run_within(command, Duration::from_secs(60));
        (code, stdout, stderr, started.elapsed())
    }

    fn write_json(path: &Path, json: &serde_json::Value) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, json.to_string()).expect("write");
    }

    fn opened(code: i32, out: &str, err: &str) {
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("ecdsa-sha2-nistp256 "), "{out}");
    }

    /// Nothing anywhere: no `GOOGLE_APPLICATION_CREDENTIALS`, no gcloud file, and no
    /// metadata server at the host `GCE_METADATA_HOST` names. Exit 4 within 5 s, naming
    /// the three sources, and Cloud KMS is never asked.
    #[test]
    fn no_credentials_at_all_exit_4_quickly_naming_the_sources() {
        let home = tempfile::tempdir().expect("tempdir");
        let name = GcpKmsEmulator::shared().create_key_version(Algorithm::EcdsaP256Sha256);
        let mut command = kmssh_gcp(home.path());
        let metadata = closed_port();
        command.env("GCE_METADATA_HOST", metadata.to_string());
        let (code, _, err, took) = pubkey(command, &name);
        assert_eq!(code, 4, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}: {err}");
        assert!(err.contains("unauthenticated (permanent)"), "{err}");
        for source in [
            "GOOGLE_APPLICATION_CREDENTIALS (not set)",
            ".config/gcloud/application_default_credentials.json (no such file)",
            &format!("the metadata server at http://{metadata}"),
            "gcloud auth application-default login",
        ] {
            assert!(err.contains(source), "{source}: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_eq!(
            GcpKmsEmulator::shared().count(&name, Operation::GetPublicKey),
            0
        );
    }

    /// `GOOGLE_APPLICATION_CREDENTIALS` naming a file that is not there: exit 4 at once,
    /// naming it (ADC does not fall back to other sources then).
    #[test]
    fn a_missing_credentials_file_is_named() {
        let home = tempfile::tempdir().expect("tempdir");
        let missing = home.path().join("no-such-key.json");
        let mut command = kmssh_gcp(home.path());
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &missing);
        let name = GcpKmsEmulator::shared().create_key_version(Algorithm::EcdsaP256Sha256);
        let (code, _, err, took) = pubkey(command, &name);
        assert_eq!(code, 4, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}: {err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    /// A service account key file: google-cloud-auth signs a JWT with the key (no token
    /// endpoint), which the emulator checks is the service account's.
    #[test]
    fn a_service_account_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa.pem",
            ],
        );
        let pem = std::fs::read_to_string(dir.path().join("sa.pem")).expect("key");
        let email = "kmssh-ca@kmssh-test.iam.gserviceaccount.com";
        let file = dir.path().join("sa.json");
        write_json(&file, &service_account_json(email, "kmssh-key-1", &pem));
        let name = key_requiring(move |token| {
            jwt_claims(token).is_some_and(|claims| {
                claims["iss"] == email
                    && claims["sub"] == email
                    && claims["scope"]
                        .as_str()
                        .is_some_and(|s| s.contains("cloud-platform"))
            })
        });
        let mut command = kmssh_gcp(dir.path());
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &file);
        let (code, out, err, _) = pubkey(command, &name);
        opened(code, &out, &err);
    }

    /// An `authorized_user` file: its refresh token is exchanged at the `token_uri` it
    /// names.
    #[test]
    fn an_authorized_user_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = oauth_token_endpoint(
            REFRESH_TOKEN,
            vec![TokenAnswer::Grant("kmssh-user-token".into())],
        );
        let file = dir.path().join("user.json");
        write_json(
            &file,
            &authorized_user_json(&format!("{}/token", endpoint.url()), REFRESH_TOKEN),
        );
        let name = key_requiring(|token| token == "kmssh-user-token");
        let mut command = kmssh_gcp(dir.path());
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &file);
        let (code, out, err, _) = pubkey(command, &name);
        opened(code, &out, &err);
        assert_eq!(endpoint.requests().len(), 1);
    }

    /// A refresh token the endpoint refuses (`invalid_grant`): exit 4 at once with the
    /// endpoint's reason and the file that was used, not a retried "outage".
    #[test]
    fn a_refused_refresh_token_is_exit_4_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let endpoint = oauth_token_endpoint(REFRESH_TOKEN, vec![TokenAnswer::InvalidGrant]);
        let file = dir.path().join("user.json");
        write_json(
            &file,
            &authorized_user_json(&format!("{}/token", endpoint.url()), REFRESH_TOKEN),
        );
        let name = key_requiring(|_| false);
        let mut command = kmssh_gcp(dir.path());
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &file);
        let (code, _, err, took) = pubkey(command, &name);
        assert_eq!(code, 4, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}: {err}");
        assert!(err.contains("unauthenticated (permanent)"), "{err}");
        assert!(err.contains("invalid_grant"), "{err}");
        assert!(
            err.contains(&format!(
                "credentials=GOOGLE_APPLICATION_CREDENTIALS={} (authorized_user)",
                file.display()
            )),
            "{err}"
        );
        assert_eq!(endpoint.requests().len(), 1);
    }

    /// gcloud's well-known file (`gcloud auth application-default login`) under `HOME`.
    #[test]
    fn the_gcloud_well_known_file() {
        let home = tempfile::tempdir().expect("tempdir");
        let endpoint = oauth_token_endpoint(
            REFRESH_TOKEN,
            vec![TokenAnswer::Grant("kmssh-gcloud-token".into())],
        );
        write_json(
            &home
                .path()
                .join(".config/gcloud/application_default_credentials.json"),
            &authorized_user_json(&format!("{}/token", endpoint.url()), REFRESH_TOKEN),
        );
        let name = key_requiring(|token| token == "kmssh-gcloud-token");
        let (code, out, err, _) = pubkey(kmssh_gcp(home.path()), &name);
        opened(code, &out, &err);
        assert_eq!(endpoint.requests().len(), 1);
    }

    /// An `external_account` file (workload identity federation): the OIDC token in a
    /// file is exchanged at STS for an access token.
    #[test]
    fn workload_identity_federation_with_a_file_sourced_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let subject = dir.path().join("oidc-token");
        std::fs::write(&subject, "kmssh-oidc-subject-token").expect("write");
        let sts = sts_endpoint(
            WIF_AUDIENCE,
            "kmssh-oidc-subject-token",
            "kmssh-federated-token",
        );
        let file = dir.path().join("wif.json");
        write_json(
            &file,
            &external_account_json(
                &format!("{}/v1/token", sts.url()),
                &subject.display().to_string(),
            ),
        );
        let name = key_requiring(|token| token == "kmssh-federated-token");
        let mut command = kmssh_gcp(dir.path());
        command.env("GOOGLE_APPLICATION_CREDENTIALS", &file);
        let (code, out, err, _) = pubkey(command, &name);
        opened(code, &out, &err);
        assert_eq!(sts.requests().len(), 1);
    }

    /// The metadata server (GCE, GKE, Cloud Run), reached through `GCE_METADATA_HOST`:
    /// probed, then asked for the default service account's token.
    #[test]
    fn the_metadata_server() {
        let home = tempfile::tempdir().expect("tempdir");
        let server = metadata_server("kmssh-metadata-token");
        let name = key_requiring(|token| token == "kmssh-metadata-token");
        let mut command = kmssh_gcp(home.path());
        command.env("GCE_METADATA_HOST", server.address().to_string());
        let (code, out, err, _) = pubkey(command, &name);
        opened(code, &out, &err);
        let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
        assert_eq!(paths.first().map(String::as_str), Some("/"), "{paths:?}");
        assert!(
            paths
                .iter()
                .any(|p| p == "/computeMetadata/v1/instance/service-accounts/default/token"),
            "{paths:?}"
        );
    }

    /// A token Cloud KMS refuses (401): exit 4 at once, naming where it came from.
    #[test]
    fn a_token_cloud_kms_refuses_is_exit_4_naming_its_source() {
        let home = tempfile::tempdir().expect("tempdir");
        let server = metadata_server("kmssh-stale-token");
        let name = key_requiring(|token| token == "kmssh-other-token");
        let mut command = kmssh_gcp(home.path());
        command.env("GCE_METADATA_HOST", server.address().to_string());
        let (code, _, err, took) = pubkey(command, &name);
        assert_eq!(code, 4, "{err}");
        assert!(took < Duration::from_secs(5), "{took:?}: {err}");
        assert!(err.contains("unauthenticated (permanent)"), "{err}");
        assert!(
            err.contains(&format!(
                "credentials=the metadata server at http://{}",
                server.address()
            )),
            "{err}"
        );
        assert_eq!(
            GcpKmsEmulator::shared().count(&name, Operation::GetPublicKey),
            1
        );
    }
}

/// Azure: the `DefaultAzureCredential`-like chain with nothing to find, and refused ones.
mod azure {
    /// The `DefaultAzureCredential`-like chain of the Azure backend, driven only through
    /// the environment a user sets, against the Key Vault emulator (which also stands in
    /// for the Entra ID token endpoint), a loopback IMDS stand-in reached through
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST`, and an `az` script on a `PATH` of its own.
    /// With nothing to find, or a refused secret, `kmssh` exits 4 within 5 s naming the
    /// sources it tried.
    #[cfg(feature = "azure")]
    mod chain {

        use std::path::{Path, PathBuf};
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};

        use kmssh_conformance::azure::{closed_loopback_url, emulator_uri};
        use kmssh_conformance::azure_emulator::{
            AppCredential, AzureKeyVaultEmulator, KeyKind, KeySetup,
        };

        use super::super::common::kmssh;

        const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

        /// A temporary home with an empty `bin/` (the `PATH`) and the emulator's CA.
        struct Home {
            dir: tempfile::TempDir,
        }

        impl Home {
            fn new() -> Self {
                let dir = tempfile::tempdir().expect("tempdir");
                std::fs::create_dir(dir.path().join("bin")).expect("bin");
                std::fs::write(
                    dir.path().join("vault-ca.pem"),
                    AzureKeyVaultEmulator::shared().ca_pem(),
                )
                .expect("write");
                Self { dir }
            }

            fn path(&self) -> &Path {
                self.dir.path()
            }

            /// `kmssh` with only this environment: the emulator as vault and Entra ID, IMDS at
            /// a closed loopback port, no tools on `PATH` but this home's.
            fn kmssh(&self, vars: &[(&str, String)]) -> Command {
                let mut command = kmssh();
                for (name, _) in std::env::vars_os() {
                    let name = name.to_string_lossy().into_owned();
                    if ["AZURE_", "KMSSH_", "IDENTITY_", "MSI_", "IMDS_"]
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
                    {
                        command.env_remove(name);
                    }
                }
                let emulator = AzureKeyVaultEmulator::shared();
                command
                    .env("HOME", self.path())
                    .env("PATH", self.path().join("bin"))
                    .env("KMSSH_AZURE_ENDPOINT", emulator.url())
                    .env("KMSSH_AZURE_CA_FILE", self.path().join("vault-ca.pem"))
                    .env("KMSSH_AZURE_VERIFY_CHALLENGE_RESOURCE", "false")
                    .env("AZURE_AUTHORITY_HOST", emulator.url())
                    .env("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed_loopback_url());
                for (name, value) in vars {
                    command.env(name, value);
                }
                command
            }

            /// An executable script `bin/NAME`.
            fn script(&self, name: &str, body: &str) -> PathBuf {
                use std::os::unix::fs::PermissionsExt;
                let path = self.path().join("bin").join(name);
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
                path
            }
        }

        /// A new P-256 key in the shared emulator: its URI.
        fn new_key() -> String {
            let name = AzureKeyVaultEmulator::shared()
                .create_key(KeySetup::signing(KeyKind::Ec(kmssh_core::Curve::P256)));
            emulator_uri(&name, None)
        }

        /// `kmssh pubkey --ca URI` (killed after 60 s): exit code, stdout, stderr, how long it
        /// took.
        fn pubkey(mut command: Command, uri: &str) -> (i32, String, String, Duration) {
            let started = Instant::now();
            let mut child = command
                .args(["pubkey", "--ca", uri])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("kmssh");
            while child.try_wait().expect("wait").is_none() {
                if started.elapsed() > Duration::from_secs(60) {
                    child.kill().expect("kill");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let took = started.elapsed();
            let out = child.wait_with_output().expect("output");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                took,
            )
        }

        fn signed(code: i32, out: &str, err: &str) {
            assert_eq!(code, 0, "{err}");
            assert!(out.starts_with("ecdsa-sha2-nistp256 "), "{out}");
        }

        /// Nothing to find: exit 4 within 5 s, one line naming every source and why it was
        /// skipped (IMDS at a closed port, no `az` or `azd` on `PATH`).
        #[test]
        fn no_credentials_anywhere_is_exit_4_within_5_seconds() {
            let home = Home::new();
            let (code, _, err, took) = pubkey(home.kmssh(&[]), &new_key());
            assert_eq!(code, 4, "{err}");
            assert!(took < Duration::from_secs(5), "{took:?}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
            for source in [
                "unauthenticated",
                "environment: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH not set",
                "workload identity: AZURE_FEDERATED_TOKEN_FILE not set",
                "managed identity (IMDS at http://127.0.0.1:",
                "no answer from IMDS",
                "Azure CLI: ",
                "az not found",
                "Azure Developer CLI: ",
            ] {
                assert!(err.contains(source), "{source}: {err}");
            }
        }

        /// A service principal's secret from the environment signs; a wrong one is exit 4 at
        /// once with Entra ID's reason, and nothing after it in the chain is asked.
        #[test]
        fn a_client_secret_signs_and_a_wrong_one_is_exit_4() {
            let emulator = AzureKeyVaultEmulator::shared();
            emulator.register_app(
                TENANT,
                "cli-secret-app",
                AppCredential::Secret("s3cret".into()),
            );
            let home = Home::new();
            let script = home.script("az", "echo called >> \"$HOME/az.log\"; exit 1");
            let vars = |secret: &str| {
                vec![
                    ("AZURE_TENANT_ID", TENANT.to_owned()),
                    ("AZURE_CLIENT_ID", "cli-secret-app".to_owned()),
                    ("AZURE_CLIENT_SECRET", secret.to_owned()),
                ]
            };
            let (code, out, err, _) = pubkey(home.kmssh(&vars("s3cret")), &new_key());
            signed(code, &out, &err);
            let requests = emulator.token_requests("cli-secret-app");
            assert!(requests.iter().all(|r| r.granted), "{requests:?}");
            assert_eq!(requests.len(), 1);

            let (code, _, err, took) = pubkey(home.kmssh(&vars("wrong")), &new_key());
            assert_eq!(code, 4, "{err}");
            assert!(took < Duration::from_secs(5), "{took:?}");
            assert!(err.contains("AADSTS7000215"), "{err}");
            assert!(err.contains("environment (client secret)"), "{err}");
            assert!(!home.path().join("az.log").exists(), "{script:?} ran");
        }

        /// Managed identity through IMDS, a user-assigned one chosen with `AZURE_CLIENT_ID`.
        #[test]
        fn a_user_assigned_managed_identity_signs_through_imds() {
            let emulator = AzureKeyVaultEmulator::shared();
            let identity = emulator.start_managed_identity(false, &["cli-user-assigned"]);
            let home = Home::new();
            let vars = [
                ("AZURE_POD_IDENTITY_AUTHORITY_HOST", identity.imds_url()),
                ("AZURE_CLIENT_ID", "cli-user-assigned".to_owned()),
            ];
            let (code, out, err, _) = pubkey(home.kmssh(&vars), &new_key());
            signed(code, &out, &err);
            let granted: Vec<_> = identity
                .requests()
                .into_iter()
                .filter(|r| r.status == 200)
                .collect();
            assert_eq!(granted.len(), 1, "{granted:?}");
            assert_eq!(granted[0].params["client_id"], "cli-user-assigned");

            // Without AZURE_CLIENT_ID the machine has no (system-assigned) identity: the
            // chain moves on, and ends naming IMDS's answer.
            let vars = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", identity.imds_url())];
            let (code, _, err, took) = pubkey(home.kmssh(&vars), &new_key());
            assert_eq!(code, 4, "{err}");
            assert!(took < Duration::from_secs(5), "{took:?}");
            assert!(err.contains("has no system-assigned identity"), "{err}");
        }

        /// The Azure Developer CLI, after an Azure CLI that is not logged in.
        #[test]
        fn the_azure_developer_cli_signs_after_a_logged_out_az() {
            let emulator = AzureKeyVaultEmulator::shared();
            let token = emulator.issue_token("azd");
            let home = Home::new();
            home.script(
                "az",
                "echo az >> \"$HOME/tools.log\"; echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1",
            );
            home.script(
                "azd",
                &format!(
                    "echo \"azd $*\" >> \"$HOME/tools.log\"\nprintf '{{\"token\":\"{token}\",\"expiresOn\":\"2099-01-01T00:00:00Z\"}}'"
                ),
            );
            let (code, out, err, _) = pubkey(home.kmssh(&[]), &new_key());
            signed(code, &out, &err);
            let log = std::fs::read_to_string(home.path().join("tools.log")).expect("tools ran");
            let lines: Vec<&str> = log.lines().collect();
            assert_eq!(lines.len(), 2, "{log}");
            assert_eq!(lines[0], "az");
            assert!(
                lines[1].starts_with("azd auth token")
                    && lines[1].contains("--scope https://vault.azure.net/.default"),
                "{log}"
            );
        }

        /// The Azure CLI, last in the chain: its token for the vault's scope signs.
        #[test]
        fn the_azure_cli_signs_when_nothing_else_is_set_up() {
            let emulator = AzureKeyVaultEmulator::shared();
            let token = emulator.issue_token("az");
            let home = Home::new();
            let expires = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs()
                + 3600;
            home.script(
                "az",
                &format!(
                    "echo \"$@\" >> \"$HOME/az.log\"\nprintf '{{\"accessToken\":\"{token}\",\"expires_on\":{expires},\"tokenType\":\"Bearer\"}}'"
                ),
            );
            let (code, out, err, _) = pubkey(home.kmssh(&[]), &new_key());
            signed(code, &out, &err);
            let log = std::fs::read_to_string(home.path().join("az.log")).expect("az ran");
            assert!(
                log.contains("account get-access-token")
                    && log.contains("--scope https://vault.azure.net/.default"),
                "{log}"
            );
        }
    }
}
