//! ssh-keygen's forms (`kmssh_pki::ssh_keygen`): the first byte picks the parser, the
//! rest is its text: 0 a duration, 1 a moment, 2 a `-V` interval, 3 `-O` options (one a
//! line) on a user and on a host certificate, 4 a KRL serial or range
//! (`kmssh_pki::krl::parse_serials`). Nothing may panic; a duration, moment or range
//! written back in plain numbers reads the same, and what parses sets parameters or fails
//! with a typed error.

#![no_main]

use kmssh_pki::CertificateParameters;
use kmssh_pki::krl::parse_serials;
use kmssh_pki::ssh_keygen::{apply_options, parse_duration, parse_moment, parse_validity};
use libfuzzer_sys::fuzz_target;

/// A fixed "now" (2023-11-14), so every run of an input answers the same.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    match selector % 5 {
        0 => {
            if let Ok(seconds) = parse_duration(text) {
                for again in [format!("{seconds}"), format!("{seconds}s")] {
                    assert_eq!(parse_duration(&again).ok(), Some(seconds), "{again}");
                }
                assert_eq!(
                    parse_moment(&format!("+{seconds}"), NOW).ok(),
                    NOW.checked_add(seconds)
                );
            }
        }
        1 => {
            if let Ok(moment) = parse_moment(text, NOW) {
                assert_eq!(parse_moment(&format!("@{moment}"), NOW).ok(), Some(moment));
            }
        }
        2 => {
            if let Ok(window) = parse_validity(text, NOW) {
                for mut params in [CertificateParameters::user(), CertificateParameters::host()] {
                    params.allow_any_principal();
                    if window.apply(&mut params).is_ok() {
                        let _ = params.resolve(NOW);
                    }
                }
            }
        }
        3 => {
            let options: Vec<String> = text.split('\n').map(str::to_owned).collect();
            for mut params in [CertificateParameters::user(), CertificateParameters::host()] {
                params.allow_any_principal();
                if apply_options(&mut params, &options).is_ok() {
                    let _ = params.resolve(NOW);
                }
            }
        }
        _ => {
            if let Ok((lo, hi)) = parse_serials(text) {
                assert!(0 < lo && lo <= hi);
                assert_eq!(parse_serials(&format!("{lo}-{hi}")).ok(), Some((lo, hi)));
                assert_eq!(
                    parse_serials(&format!("{lo:#x}-{hi:#x}")).ok(),
                    Some((lo, hi))
                );
            }
        }
    }
});
