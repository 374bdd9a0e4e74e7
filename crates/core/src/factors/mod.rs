//! One module per factor, each with the same small shape: make a secret (enroll), check a
//! response (verify), and describe it for the factor inventory.

pub mod pskc;
pub mod recovery_codes;
pub mod totp;
