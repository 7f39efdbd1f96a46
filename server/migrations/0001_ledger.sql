-- The kmssh-server ledger. Portable SQL: the same file runs on SQLite and PostgreSQL.
--
-- u64 values are stored in BIGINT columns: serials as their two's-complement bit pattern (exact,
-- unique; serials above 2^63 read back negative in raw SQL), timestamps clamped to 2^63-1 (which
-- reads back as u64::MAX, "forever").

-- One row per CA: the next serial no instance has reserved yet. Instances take blocks of serials
-- with `UPDATE ... SET next_serial = next_serial + n RETURNING next_serial`.
CREATE TABLE serial_counters (
    ca_fingerprint TEXT NOT NULL PRIMARY KEY,
    next_serial BIGINT NOT NULL
);

-- Requester-chosen serials. A claim is refused when the serial is already claimed or lies below
-- the CA's counter (reserved by some instance); a reserved block skips claimed serials.
CREATE TABLE serial_claims (
    ca_fingerprint TEXT NOT NULL,
    serial BIGINT NOT NULL,
    PRIMARY KEY (ca_fingerprint, serial)
);

-- Every certificate issued.
CREATE TABLE issued_certificates (
    ca_fingerprint TEXT NOT NULL,
    serial BIGINT NOT NULL,
    ca_key TEXT NOT NULL,
    key_id TEXT NOT NULL,
    -- JSON array of strings, in certificate order.
    principals TEXT NOT NULL,
    cert_type TEXT NOT NULL CHECK (cert_type IN ('user', 'host')),
    valid_after BIGINT NOT NULL,
    valid_before BIGINT NOT NULL,
    subject_fingerprint TEXT NOT NULL,
    caller TEXT NOT NULL,
    request_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    -- The OpenSSH one-line form.
    certificate TEXT NOT NULL,
    CONSTRAINT issued_certificates_ca_serial UNIQUE (ca_fingerprint, serial)
);
CREATE INDEX issued_certificates_issued_at ON issued_certificates (issued_at);
CREATE INDEX issued_certificates_key_id ON issued_certificates (key_id);
CREATE INDEX issued_certificates_caller ON issued_certificates (caller);
CREATE INDEX issued_certificates_subject ON issued_certificates (subject_fingerprint);

-- One row per distinct principal of each issued certificate, so a principal filter uses an index.
CREATE TABLE issued_principals (
    ca_fingerprint TEXT NOT NULL,
    serial BIGINT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (ca_fingerprint, serial, principal)
);
CREATE INDEX issued_principals_principal ON issued_principals (principal);

-- Every refused request.
CREATE TABLE refusals (
    caller TEXT NOT NULL,
    rule TEXT NOT NULL,
    message TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ca_key TEXT,
    at BIGINT NOT NULL,
    peer TEXT
);
CREATE INDEX refusals_at ON refusals (at);
CREATE INDEX refusals_caller ON refusals (caller);
