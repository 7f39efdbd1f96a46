//! KRLs judged by OpenSSH: `ssh-keygen -Q` agrees with `Krl::check_*` on KRLs written by
//! either tool (ours read by ssh-keygen, ssh-keygen's read by ours), over 100,000 revoked
//! serials in scattered ranges, key ids, explicit keys and fingerprints; our encoding is
//! within 1.1× of ssh-keygen's size; the reader survives mutated input.

use std::path::{Path, PathBuf};
use std::process::Command;

use kmssh_backend_local::{LocalKey, LocalOptions};
use kmssh_core::{Curve, KeySpec, KmsKey as _};
use kmssh_pki::krl::{Krl, Revoked};
use kmssh_pki::ssh_key::public::KeyData;
use kmssh_pki::{
    Certificate, CertificateParameters, issue_at, parse_subject_key, pubkey_string, ssh_public_key,
    unix_now,
};

/// xorshift64*: deterministic serials, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn ssh_keygen(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("ssh-keygen")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("ssh-keygen runs")
}

fn new_key(dir: &Path, name: &str) -> (PathBuf, KeyData) {
    let out = ssh_keygen(
        dir,
        &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", name],
    );
    assert!(out.status.success(), "{out:?}");
    let path = dir.join(format!("{name}.pub"));
    let key = parse_subject_key(&std::fs::read_to_string(&path).expect("pub")).expect("key");
    (path, key)
}

/// Whether `ssh-keygen -Q -f KRL FILE` says revoked (exit 1, "REVOKED") or ok (exit 0).
fn ssh_keygen_says_revoked(dir: &Path, krl: &str, file: &Path) -> bool {
    let out = ssh_keygen(dir, &["-Q", "-f", krl, &file.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => {
            assert!(stdout.contains(": ok"), "{stdout}");
            false
        }
        Some(1) if stdout.contains("REVOKED") => true,
        _ => panic!(
            "ssh-keygen -Q failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Scattered ranges holding `total` serials in all, between 1 and 2^40.
fn scattered_ranges(total: u64) -> Vec<(u64, u64)> {
    let mut rng = Rng(0x6b72_6c00_0017);
    let mut ranges = Vec::new();
    let mut count = 0;
    while count < total {
        let lo = 1 + rng.next() % (1 << 40);
        // Mostly short runs and singles, sometimes a dense cluster or a long range.
        let len = match rng.next() % 10 {
            0..=4 => 1,
            5..=7 => 1 + rng.next() % 8,
            8 => 1 + rng.next() % 300,
            _ => 1 + rng.next() % 3000,
        }
        .min(total - count);
        // Dense clusters: serials close together (what a CA's sequential serials give).
        if rng.next().is_multiple_of(4) {
            let mut at = lo;
            for _ in 0..len {
                ranges.push((at, at));
                at += 1 + rng.next() % 5;
            }
        } else {
            ranges.push((lo, lo + len - 1));
        }
        count += len;
    }
    ranges
}

#[tokio::test]
async fn ssh_keygen_and_kmssh_agree_on_krls_written_by_either() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = LocalKey::generate(KeySpec::Ecdsa(Curve::P256), LocalOptions::default()).expect("ca");
    let ca_key = ssh_public_key(ca.public_key());
    std::fs::write(d.join("ca.pub"), pubkey_string(ca.public_key(), "ca")).expect("ca.pub");
    let (_, user) = new_key(d, "user");
    let (bad_path, bad) = new_key(d, "bad");
    let (bad_hash_path, bad_hash) = new_key(d, "badhash");

    let ranges = scattered_ranges(100_000);
    let mut ours = Krl::new();
    ours.comment = "kmssh test".into();
    ours.version = 7;
    ours.generated_date = unix_now();
    let mut spec = String::new();
    for &(lo, hi) in &ranges {
        ours.revoke_serials(Some(&ca_key), lo, hi).expect("revoke");
        // ssh-keygen refuses a one-serial range (`N-N`).
        if lo == hi {
            spec.push_str(&format!("serial: {lo}\n"));
        } else {
            spec.push_str(&format!("serial: {lo}-{hi}\n"));
        }
    }
    ours.revoke_key_id(Some(&ca_key), "stolen-laptop")
        .expect("key id");
    ours.revoke_key(&bad).expect("key");
    ours.revoke_key_sha256(&bad_hash).expect("hash");
    spec.push_str("id: stolen-laptop\n");
    spec.push_str(&format!(
        "key: {}",
        std::fs::read_to_string(&bad_path).expect("pub")
    ));
    spec.push_str(&format!(
        "sha256: {}",
        std::fs::read_to_string(&bad_hash_path).expect("pub")
    ));
    std::fs::write(d.join("spec"), spec).expect("spec");
    let out = ssh_keygen(d, &["-k", "-f", "theirs.krl", "-s", "ca.pub", "spec"]);
    assert!(out.status.success(), "ssh-keygen -k: {out:?}");
    let our_bytes = ours.to_bytes();
    std::fs::write(d.join("ours.krl"), &our_bytes).expect("write");
    let their_bytes = std::fs::read(d.join("theirs.krl")).expect("theirs");
    let theirs = Krl::from_bytes(&their_bytes).expect("we read ssh-keygen's KRL");
    assert_eq!(Krl::from_bytes(&our_bytes).expect("ours reads back"), ours);
    assert_eq!(theirs.counts(), ours.counts(), "the same revocations");

    let ratio = our_bytes.len() as f64 / their_bytes.len() as f64;
    println!(
        "100,000 serials in {} ranges: kmssh {} bytes, ssh-keygen {} bytes, ratio {ratio:.3}",
        ranges.len(),
        our_bytes.len(),
        their_bytes.len()
    );
    assert!(ratio <= 1.1, "our KRL is {ratio:.3}× ssh-keygen's");

    // Certificates at the edges of revoked ranges, between them, and by key id.
    let mut probes: Vec<(u64, &str, &KeyData)> = Vec::new();
    for &(lo, hi) in ranges.iter().step_by(997).take(12) {
        probes.push((lo, "probe", &user));
        probes.push((hi, "probe", &user));
        probes.push((lo - 1, "probe", &user));
        probes.push((hi + 1, "probe", &user));
    }
    probes.push((0, "stolen-laptop", &user));
    probes.push((0, "someone-else", &user));
    probes.push((424_242, "probe", &bad));
    probes.push((424_243, "probe", &bad_hash));
    let now = unix_now();
    let mut revoked_count = 0;
    for (i, &(serial, key_id, subject)) in probes.iter().enumerate() {
        let mut params = CertificateParameters::user();
        params
            .principal("alice")
            .expect("p")
            .serial(serial)
            .expect("serial")
            .key_id(key_id)
            .expect("id");
        let cert = issue_at(&ca, subject, &params, now).await.expect("issued");
        let path = d.join(format!("probe{i}-cert.pub"));
        std::fs::write(&path, cert.cert_string("")).expect("write");
        let reread = Certificate::from_openssh(&cert.cert_string("")).expect("reads");
        let verdicts = [
            ssh_keygen_says_revoked(d, "ours.krl", &path),
            ssh_keygen_says_revoked(d, "theirs.krl", &path),
            ours.check_certificate(&reread).is_some(),
            theirs.check_certificate(&reread).is_some(),
        ];
        assert!(
            verdicts.iter().all(|&v| v == verdicts[0]),
            "serial {serial} key id {key_id}: ssh-keygen on ours, on theirs, ours on ours, ours on theirs: {verdicts:?}"
        );
        revoked_count += usize::from(verdicts[0]);
    }
    assert!(revoked_count > 10 && revoked_count < probes.len() - 10);

    // Plain keys.
    for (path, key, revoked) in [
        (&bad_path, &bad, Some(Revoked::ExplicitKey)),
        (&bad_hash_path, &bad_hash, Some(Revoked::Sha256Fingerprint)),
        (&d.join("user.pub"), &user, None),
    ] {
        assert_eq!(ours.check_key(key), revoked);
        assert_eq!(theirs.check_key(key), revoked);
        assert_eq!(
            ssh_keygen_says_revoked(d, "ours.krl", path),
            revoked.is_some()
        );
    }
}

#[tokio::test]
async fn krls_for_rsa_and_ed25519_cas_agree_with_ssh_keygen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_, user) = new_key(d, "user");
    for spec in [KeySpec::Rsa(2048), KeySpec::Ed25519] {
        let ca = LocalKey::generate(spec, LocalOptions::default()).expect("ca");
        let ca_key = ssh_public_key(ca.public_key());
        std::fs::write(d.join("ca.pub"), pubkey_string(ca.public_key(), "ca")).expect("ca.pub");
        std::fs::write(d.join("spec"), "serial: 5-9\nid: lost-laptop\n").expect("spec");
        let out = ssh_keygen(d, &["-k", "-f", "theirs.krl", "-s", "ca.pub", "spec"]);
        assert!(out.status.success(), "{spec}: ssh-keygen -k: {out:?}");
        let theirs = Krl::from_bytes(&std::fs::read(d.join("theirs.krl")).expect("theirs"))
            .expect("we read ssh-keygen's KRL");
        let mut ours = Krl::new();
        ours.revoke_serials(Some(&ca_key), 5, 9).expect("revoke");
        ours.revoke_key_id(Some(&ca_key), "lost-laptop")
            .expect("key id");
        std::fs::write(d.join("ours.krl"), ours.to_bytes()).expect("write");
        // ssh-keygen's KRL names the CA by the blob it read from our line: its revocations
        // reach our certificates only if that blob is the one they carry (below).
        assert_eq!(theirs.counts(), ours.counts(), "{spec}");

        for (serial, key_id, revoked) in [
            (4, "probe", false),
            (5, "probe", true),
            (9, "probe", true),
            (10, "probe", false),
            (11, "lost-laptop", true),
        ] {
            let mut params = CertificateParameters::user();
            params
                .principal("alice")
                .and_then(|p| p.serial(serial))
                .and_then(|p| p.key_id(key_id))
                .expect("params");
            let cert = issue_at(&ca, &user, &params, unix_now())
                .await
                .expect("issued");
            let path = d.join("probe-cert.pub");
            std::fs::write(&path, cert.cert_string("")).expect("write");
            let what = format!("{spec} serial {serial} key id {key_id}");
            assert_eq!(
                ssh_keygen_says_revoked(d, "ours.krl", &path),
                revoked,
                "{what}"
            );
            assert_eq!(
                ssh_keygen_says_revoked(d, "theirs.krl", &path),
                revoked,
                "{what}"
            );
            assert_eq!(ours.check_certificate(&cert).is_some(), revoked, "{what}");
            assert_eq!(theirs.check_certificate(&cert).is_some(), revoked, "{what}");
        }
    }
}

#[test]
fn the_reader_refuses_or_reads_every_mutation_without_panicking() {
    let mut krl = Krl::new();
    for &(lo, hi) in &scattered_ranges(2_000) {
        krl.revoke_serials(None, lo, hi).expect("revoke");
    }
    krl.revoke_key_id(None, "x").expect("id");
    let seed = krl.to_bytes();
    let mut rng = Rng(0x5eed);
    let (mut refused, mut read) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = seed.clone();
        for _ in 0..=rng.next() % 4 {
            let at = usize::try_from(rng.next() % bytes.len() as u64).expect("fits");
            match rng.next() % 4 {
                0 => bytes[at] ^= 1 << (rng.next() % 8),
                1 => bytes[at] = u8::try_from(rng.next() & 0xff).expect("byte"),
                2 => bytes.truncate(at.max(1)),
                _ => {
                    let byte = bytes[at];
                    bytes.insert(at, byte);
                }
            }
        }
        match Krl::from_bytes(&bytes) {
            Ok(back) => {
                read += 1;
                // Whatever was read writes and reads back to itself.
                assert_eq!(Krl::from_bytes(&back.to_bytes()).expect("again"), back);
            }
            Err(_) => refused += 1,
        }
    }
    println!("20,000 mutated KRLs: {refused} refused, {read} read");
    assert!(refused > 0 && read > 0);
}
