-- Revocations, recorded through the service (`Revocation/Revoke`). One row per revoked
-- certificate; rows are never deleted, so a CA's row count is its KRL version.
CREATE TABLE revocations (
    ca_fingerprint TEXT NOT NULL,
    serial BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL,
    caller TEXT NOT NULL,
    reason TEXT NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (ca_fingerprint, serial)
);
