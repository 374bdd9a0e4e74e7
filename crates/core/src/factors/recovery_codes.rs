//! Single-use recovery codes (capability F7), for a lost phone or key and for downtime.
//!
//! Ten codes of 16 characters from Crockford's base32 alphabet (no I, L, O, U: nothing to
//! misread on paper), grouped in fours. The first character names the code's slot, so an
//! attempt costs one Argon2id verification, not ten; the other fifteen carry 75 random
//! bits. Codes are stored as Argon2id hashes (people type them) and a used slot is emptied,
//! so each code works once.

use zeroize::Zeroizing;

pub const CODES: usize = 10;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RANDOM_CHARS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("a recovery code is 16 letters and digits, such as 1ABC-DEFG-HJKM-NPQR")]
    Malformed,
    #[error("the recovery code is not valid")]
    Invalid,
    #[error("system random number generator failed")]
    Random,
    #[error("recovery code hashing failed")]
    Hash,
}

/// A new set: the codes to show once, and the hashes to store (slot `i` holds code `i`).
pub struct NewCodes {
    pub codes: Vec<Zeroizing<String>>,
    pub hashes: Vec<Option<String>>,
}

pub fn generate() -> Result<NewCodes, RecoveryError> {
    let mut codes = Vec::with_capacity(CODES);
    let mut hashes = Vec::with_capacity(CODES);
    for &slot_char in &ALPHABET[..CODES] {
        let mut random = Zeroizing::new([0u8; RANDOM_CHARS]);
        getrandom::fill(random.as_mut()).map_err(|_| RecoveryError::Random)?;
        let mut raw = Zeroizing::new(String::with_capacity(16));
        raw.push(char::from(slot_char));
        // 256 is a multiple of 32, so `b % 32` is uniform.
        raw.extend(random.iter().map(|b| char::from(ALPHABET[usize::from(b % 32)])));
        hashes.push(Some(crate::passphrase::hash(&raw).map_err(|_| RecoveryError::Hash)?));
        codes.push(Zeroizing::new(format!("{}-{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12], &raw[12..16])));
    }
    Ok(NewCodes { codes, hashes })
}

/// The canonical form of what someone typed: upper case, no separators, and the letters
/// Crockford's alphabet reads as digits (O → 0, I and L → 1).
fn canonical(typed: &str) -> Result<Zeroizing<String>, RecoveryError> {
    let mut out = Zeroizing::new(String::with_capacity(16));
    for c in typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')) {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return Err(RecoveryError::Malformed);
        }
        out.push(c);
    }
    if out.len() != 1 + RANDOM_CHARS {
        return Err(RecoveryError::Malformed);
    }
    Ok(out)
}

/// Checks a typed code against the stored slots; returns the slot to empty. A used code
/// and a wrong code get the same answer.
pub fn verify(typed: &str, slots: &[Option<String>]) -> Result<usize, RecoveryError> {
    let code = canonical(typed)?;
    let slot = ALPHABET.iter().position(|&b| b == code.as_bytes()[0]).ok_or(RecoveryError::Malformed)?;
    match slots.get(slot) {
        Some(Some(phc)) if crate::passphrase::verify(&code, phc) => Ok(slot),
        _ => Err(RecoveryError::Invalid),
    }
}

/// Codes still usable; the account page warns when one is left.
pub fn remaining(slots: &[Option<String>]) -> usize {
    slots.iter().filter(|s| s.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_in_groups_of_four_each_in_its_slot() {
        let set = generate().unwrap();
        assert_eq!(set.codes.len(), CODES);
        assert_eq!(remaining(&set.hashes), CODES);
        let unique: std::collections::HashSet<_> = set.codes.iter().map(|c| c.to_string()).collect();
        assert_eq!(unique.len(), CODES);
        for (i, c) in set.codes.iter().enumerate() {
            assert_eq!(c.len(), 19);
            assert_eq!(c.matches('-').count(), 3);
            assert_eq!(verify(c, &set.hashes), Ok(i));
        }
    }

    #[test]
    fn each_code_works_once_and_typing_slips_are_forgiven() {
        let set = generate().unwrap();
        let mut slots = set.hashes.clone();
        let code = set.codes[3].to_lowercase().replace('-', " ").replace('0', "o").replace('1', "l");
        let slot = verify(&code, &slots).unwrap();
        assert_eq!(slot, 3);
        slots[slot] = None;
        assert_eq!(verify(&set.codes[3], &slots), Err(RecoveryError::Invalid));
        assert_eq!(remaining(&slots), CODES - 1);
        // Another code still works.
        assert_eq!(verify(&set.codes[4], &slots), Ok(4));
    }

    #[test]
    fn wrong_and_malformed_codes_are_refused() {
        let set = generate().unwrap();
        let mut wrong = set.codes[0].to_string();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'Z' { 'Y' } else { 'Z' });
        assert_eq!(verify(&wrong, &set.hashes), Err(RecoveryError::Invalid));
        for bad in [
            "",
            "ABCD-EFGH",
            "ABCD-EFGH-JKMN-PQRSX",
            "ABCD-EFGH-JKMN-PQR!",
            "ABCD-EFGH-JKMN-PQRU",
            "ÄBCD-EFGH-JKMN-PQRS",
        ] {
            assert_eq!(verify(bad, &set.hashes), Err(RecoveryError::Malformed), "{bad:?}");
        }
        // A slot beyond the ten (the first character names slot 31) is simply not valid.
        assert_eq!(verify("ZZZZ-ZZZZ-ZZZZ-ZZZZ", &set.hashes), Err(RecoveryError::Invalid));
    }
}
