//! The `kmssh` binary with no credentials, or refused ones, for each cloud backend: it
//! must exit 4 quickly, naming the credential sources it tried, instead of retrying a
//! "network outage" to its deadline. Every provider's endpoints are loopback stand-ins;
//! nothing leaves the machine.

mod common;

/// AWS: the SDK's default chain with nothing to find, and with refused credentials.
mod aws {}

/// Google Cloud: Application Default Credentials with nothing to find, and refused ones.
mod gcp {}

/// Azure: the `DefaultAzureCredential`-like chain with nothing to find, and refused ones.
mod azure {}
