//! An RSA key pair for tests of Salesforce's JWT bearer flow. It exists only to sign and check
//! test assertions against the simulator; it protects nothing and must never configure a real
//! connected app.

/// The private key (PKCS#8 PEM) the adapter signs test assertions with.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("../fixtures/jwt-test-key.pem");
/// The matching public key (SPKI PEM) the simulator checks them against.
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("../fixtures/jwt-test-key.pub.pem");
