#!/bin/sh
# Regenerates the seed corpora in fuzz/corpus/<target>/ from real tools (ssh-keygen,
# openssl) and the protocol layouts (the agent frames, written here byte by byte).
# Seeds are small valid inputs; the fuzzer mutates them. Run from anywhere:
#   sh fuzz/make_corpus.sh
# The KRL seeds revoke what fuzz/fixtures/ holds (the certificate the `krl` target checks),
# so the target reaches every "revoked" answer.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus"
fixtures="$here/fixtures"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

for target in agent_codec krl certificate public_key csr key_uri validity_and_options sshsig x509_csr; do
    rm -rf "${corpus:?}/$target"
    mkdir -p "$corpus/$target"
done

# Keys and certificates.
ssh-keygen -q -t ed25519 -N '' -C ca -f ca_ed
ssh-keygen -q -t ecdsa -b 256 -N '' -C ca -f ca_ec
ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f ed
ssh-keygen -q -t ecdsa -b 256 -N '' -C p256 -f p256
ssh-keygen -q -t ecdsa -b 384 -N '' -C p384 -f p384
ssh-keygen -q -t ecdsa -b 521 -N '' -C p521 -f p521
ssh-keygen -q -t rsa -b 2048 -N '' -C rsa -f rsa
ssh-keygen -q -s ca_ed -I alice@example.com -n alice,root -z 42 -V always:forever \
    -O force-command=/bin/true -O source-address=10.0.0.0/8 ed.pub
ssh-keygen -q -s ca_ec -I web-01 -h -n web-01.example.com -z 7 -V always:forever p384.pub
ssh-keygen -q -s ca_ed -I rsa-user -n dave -z 1000 -V 20200101:20990101 rsa.pub

# certificate: the lines, and the raw blobs.
for cert in ed p384 rsa; do
    cp "$cert-cert.pub" "$corpus/certificate/$cert-line"
    cut -d' ' -f2 "$cert-cert.pub" | openssl base64 -d -A >"$corpus/certificate/$cert-blob"
done

# public_key: OpenSSH lines, DER SubjectPublicKeyInfo, PEM, a TrustedUserCAKeys file.
for key in ed p256 p384 p521 rsa; do
    cp "$key.pub" "$corpus/public_key/$key-line"
done
for key in p256 p384 p521 rsa; do
    ssh-keygen -e -m PKCS8 -f "$key.pub" >"$key.pem"
    openssl pkey -pubin -in "$key.pem" -outform DER -out "$corpus/public_key/$key-der"
done
# ssh-keygen does not export Ed25519 as PKCS#8: RFC 8410's fixed prefix and the 32 bytes.
python3 - ed.pub "$corpus/public_key/ed-der" <<'EOF'
import base64, sys
blob = base64.b64decode(open(sys.argv[1]).read().split()[1])
open(sys.argv[2], "wb").write(bytes.fromhex("302a300506032b6570032100") + blob[-32:])
EOF
cp p256.pem "$corpus/public_key/p256-pem"
{ echo "# CAs"; cat ca_ed.pub; echo; cat ca_ec.pub; } >"$corpus/public_key/trusted-cas"

# sshsig: the armored signature, a NUL, then the message it signs.
printf 'release 1.0\n' >message
for key in ed p256 rsa; do
    ssh-keygen -q -Y sign -n file -f "$key" message
    { cat message.sig; printf '\0'; cat message; } >"$corpus/sshsig/$key"
    rm message.sig
done

# krl: ssh-keygen -k over the fixture CA, certificate and key, one section kind each, and
# all of them together.
ca="$fixtures/ca.pub"
printf 'serial: 42\n' >serial.spec
printf 'serial: 10-20\nserial: 42\nserial: 44\nserial: 46\nserial: 100-1000000\n' >serials.spec
printf 'id: alice@example.com\nid: web-01\n' >ids.spec
{ printf 'key: '; cat "$fixtures/alice.pub"; } >key.spec
{ printf 'sha256: '; cat "$fixtures/alice.pub"; printf 'sha1: '; cat ca_ec.pub; } >sha256.spec
{ printf 'hash: '; ssh-keygen -lf ca_ec.pub | cut -d' ' -f2; } >hash.spec
for spec in serial serials ids; do
    ssh-keygen -q -k -f "$corpus/krl/$spec" -s "$ca" -z 3 "$spec.spec"
done
for spec in key sha256 hash; do
    ssh-keygen -q -k -f "$corpus/krl/$spec" -z 4 "$spec.spec"
done
cat serial.spec serials.spec ids.spec >scoped.spec
ssh-keygen -q -k -f all -s "$ca" -z 5 scoped.spec
ssh-keygen -q -k -u -f all -z 6 key.spec
cp all "$corpus/krl/all"
# Certificates by serial and id under any CA (an empty CA key), which ssh-keygen does not
# write: laid out by PROTOCOL.krl.
python3 - "$corpus/krl/any-ca" <<'EOF'
import struct, sys
s = lambda b: struct.pack(">I", len(b)) + b
header = b"SSHKRL\n\0" + struct.pack(">IQQQ", 1, 7, 1700000000, 0) + s(b"") + s(b"any CA")
serials = bytes([0x20]) + s(struct.pack(">QQ", 42, 43))
ranges = bytes([0x21]) + s(struct.pack(">QQ", 100, 200))
bitmap = bytes([0x22]) + s(struct.pack(">Q", 1000) + s(bytes([0x05, 0xa5])))
ids = bytes([0x23]) + s(s(b"alice@example.com"))
section = s(b"") + s(b"") + serials + ranges + bitmap + ids
open(sys.argv[1], "wb").write(header + bytes([1]) + s(section))
EOF

# x509_csr: PKCS#10 requests from openssl, DER and PEM.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj "/CN=www.example.com/O=Example" -addext "subjectAltName=DNS:www.example.com" \
    -outform DER -out "$corpus/x509_csr/p256-der" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout /dev/null \
    -subj "/CN=p384" -sha384 -out "$corpus/x509_csr/p384-pem" 2>/dev/null
openssl req -new -newkey ed25519 -nodes -keyout /dev/null -subj "/CN=ed25519" \
    -outform DER -out "$corpus/x509_csr/ed25519-der" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout /dev/null -subj "/CN=rsa" \
    -outform DER -out "$corpus/x509_csr/rsa-der" 2>/dev/null

# csr: paramiko-cloud's serialized requests (pki's test vectors), binary and base64.
python3 - "$here/../pki/tests/vectors/paramiko-cloud-csr.json" "$corpus/csr" <<'EOF'
import base64, json, sys
for v in json.load(open(sys.argv[1])):
    raw = base64.b64decode(v["csr_protobuf_base64"])
    open(f"{sys.argv[2]}/{v['name']}", "wb").write(raw)
    open(f"{sys.argv[2]}/{v['name']}-base64", "w").write(v["csr_protobuf_base64"] + "\n")
EOF

# agent_codec: frames (uint32 length, body) as ssh and the agent send them.
python3 - "$corpus/agent_codec" ed.pub <<'EOF'
import base64, struct, sys
out, pub = sys.argv[1], sys.argv[2]
blob = base64.b64decode(open(pub).read().split()[1])
s = lambda b: struct.pack(">I", len(b)) + b
frame = lambda body: s(body)
identities = frame(bytes([11]))
session = b"\x00" * 32
sign = frame(bytes([13]) + s(blob) + s(s(session) + b"\x32" + s(b"alice") + s(b"ssh-connection") + s(b"publickey") + b"\x01" + s(b"ssh-ed25519") + s(blob)) + struct.pack(">I", 0))
rsa_sign = frame(bytes([13]) + s(blob) + s(b"data") + struct.pack(">I", 4))
extension = frame(bytes([27]) + s(b"session-bind@openssh.com") + s(blob) + s(b"id") + s(b"sig") + b"\x00")
answer = frame(bytes([12]) + struct.pack(">I", 2) + s(blob) + s(b"alice@laptop") + s(blob) + s(b""))
signature = frame(bytes([14]) + s(s(b"ssh-ed25519") + s(b"\x07" * 64)))
seeds = {
    "request-identities": identities,
    "sign-request": sign,
    "sign-request-rsa-sha2-512": rsa_sign,
    "extension": extension,
    "lock": frame(bytes([22]) + s(b"passphrase")),
    "identities-answer": answer,
    "sign-response": signature,
    "failure-success": frame(bytes([5])) + frame(bytes([6])),
    "session": identities + answer + sign + signature,
}
for name, data in seeds.items():
    open(f"{out}/{name}", "wb").write(data)
EOF

# key_uri: one of each scheme and form.
printf 'local:ephemeral?type=ecdsa&curve=p384' >"$corpus/key_uri/local-ephemeral"
printf 'local:/etc/ssh-ca/ca_key?engine=aws-lc&permissions=any' >"$corpus/key_uri/local-file"
printf 'aws-kms:arn:aws:kms:eu-west-1:111122223333:alias/ssh-ca' >"$corpus/key_uri/aws"
printf 'gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1' >"$corpus/key_uri/gcp"
printf 'azure-kv:https://v.vault.azure.net/keys/ca/0123abcd' >"$corpus/key_uri/azure"

# validity_and_options: a selector byte (0 duration, 1 moment, 2 -V, 3 -O lines, 4 KRL
# serials) and text.
v="$corpus/validity_and_options"
printf '\0001w2d3h4m5s' >"$v/duration"
printf '\001+8h' >"$v/moment-relative"
printf '\00120250101123456Z' >"$v/moment-date"
printf '\001@1700000000' >"$v/moment-epoch"
printf '\002-5m:+1d' >"$v/validity-relative"
printf '\002always:forever' >"$v/validity-always"
printf '\00220250101:202601011200' >"$v/validity-dates"
printf '\003clear\npermit-pty\nno-port-forwarding\nforce-command=/bin/true\nsource-address=10.0.0.0/8,::1/128\nextension:login@example.com=alice\nverify-required' >"$v/options"
printf '\004100-0x1ff' >"$v/serials"

echo "$(find "$corpus" -type f | wc -l) seeds, $(cat "$corpus"/*/* | wc -c) bytes in $corpus"
