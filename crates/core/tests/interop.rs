//! Wardgate's TOTP against an independent implementation: Debian's `oathtool` (liboath).

use std::process::Command;

use wardgate_core::factors::totp::{TotpAlgorithm, TotpParams, code_at, generate_secret, verify};

fn oathtool_available() -> bool {
    let ok = Command::new("oathtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        // CI installs it and sets this, so a missing tool fails there instead of passing.
        assert!(
            std::env::var("WARDGATE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "WARDGATE_REQUIRE_TOOLS=1 but oathtool is not installed"
        );
        eprintln!("oathtool interoperability skipped: oathtool is not installed (apt-get install oathtool)");
    }
    ok
}

fn oathtool(params: TotpParams, secret: &[u8], unix: i64) -> String {
    let alg = match params.algorithm {
        TotpAlgorithm::Sha1 => "sha1",
        TotpAlgorithm::Sha256 => "sha256",
        TotpAlgorithm::Sha512 => "sha512",
    };
    let out = Command::new("oathtool")
        .arg(format!("--totp={alg}"))
        .args(["-d", &params.digits.to_string(), "-s", &format!("{}s", params.step_secs), "-N", &format!("@{unix}")])
        .arg(hex::encode(secret))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn codes_agree_with_oathtool_for_random_secrets_and_every_parameter_set() {
    if !oathtool_available() {
        return;
    }
    let sets = [
        TotpParams::default(),
        TotpParams { algorithm: TotpAlgorithm::Sha1, digits: 8, step_secs: 30 },
        TotpParams { algorithm: TotpAlgorithm::Sha256, digits: 6, step_secs: 30 },
        TotpParams { algorithm: TotpAlgorithm::Sha512, digits: 8, step_secs: 60 },
    ];
    for params in sets {
        for unix in [59i64, 1_111_111_109, 1_795_849_200, 4_102_444_800] {
            let secret = generate_secret().unwrap();
            let theirs = oathtool(params, &secret, unix);
            let at = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
            assert_eq!(code_at(params, &secret, at).unwrap(), theirs, "{params:?} at {unix}");
            let step = verify(params, &secret, &theirs, at, None).unwrap();
            assert_eq!(step, unix as u64 / params.step_secs);
        }
    }
}
