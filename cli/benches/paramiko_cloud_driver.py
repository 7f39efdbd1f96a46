"""paramiko-cloud's local key path issuing N certificates, for `cargo bench --bench paramiko`.

The CA is paramiko_cloud.dummy.keys.ECDSAKey (a PEM EC key file signing through
`cryptography`), the same certificate-making code (`CertificateSigningKeyMixin.sign_certificate`)
its AWS, GCP and Azure keys use. Each subject's public key line is parsed
(`paramiko.PKey.from_type_string`), certified for principal `alice`, key ID
`alice@example.com`, 8 hours, and rendered as a `*-cert.pub` line.

    python paramiko_cloud_driver.py memory CA_PEM LIST OUT
        LIST names one subject `.pub` file a line; their lines are read before the clock
        starts; the N certificate lines are written to OUT after it stops.
    python paramiko_cloud_driver.py files CA_PEM LIST
        Each subject file is read, and its certificate written beside it as
        NAME-cert.pub, inside the timed loop (what `kmssh sign FILE...` does).

Prints one line: `imports=S open=S first=S issue=S count=N`, seconds measured inside the
interpreter from the first statement of this file (the interpreter's own start is not in
them: the caller times the whole process for that). In `memory` mode one certificate is
issued before the clock starts (`first`: lazy initialisation on either side is not in the
rate), then all N; `files` mode has no warm-up (first=0).
"""

import time

STARTED = time.perf_counter()

import base64  # noqa: E402
import datetime  # noqa: E402
import sys  # noqa: E402

import paramiko  # noqa: E402
from paramiko_cloud.dummy.keys import ECDSAKey  # noqa: E402

IMPORTED = time.perf_counter()

VALID_FOR = datetime.timedelta(hours=8)


def certify(ca: ECDSAKey, line: str) -> str:
    key_type, blob = line.split()[:2]
    subject = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
    cert = ca.sign_certificate(
        subject, ["alice"], key_id="alice@example.com", valid_for=VALID_FOR
    )
    return cert.cert_string("alice")


def main() -> None:
    mode, ca_path, list_path = sys.argv[1:4]
    with open(list_path) as f:
        paths = [p for p in f.read().splitlines() if p]

    opened_at = time.perf_counter()
    with open(ca_path, "rb") as f:
        ca = ECDSAKey(f.read())
    opened = time.perf_counter()

    if mode == "memory":
        lines = []
        for path in paths:
            with open(path) as f:
                lines.append(f.read())
        first_at = time.perf_counter()
        certify(ca, lines[0])
        first = time.perf_counter() - first_at
        start = time.perf_counter()
        certs = [certify(ca, line) for line in lines]
        issued = time.perf_counter()
        with open(sys.argv[4], "w") as f:
            f.write("\n".join(certs) + "\n")
    elif mode == "files":
        first = 0.0
        start = time.perf_counter()
        for path in paths:
            with open(path) as f:
                line = f.read()
            with open(path[: -len(".pub")] + "-cert.pub", "w") as f:
                f.write(certify(ca, line) + "\n")
        issued = time.perf_counter()
    else:
        sys.exit(f"unknown mode {mode!r}: expected memory or files")

    print(
        f"imports={IMPORTED - STARTED:.6f} open={opened - opened_at:.6f} "
        f"first={first:.6f} issue={issued - start:.6f} count={len(paths)}"
    )


main()
