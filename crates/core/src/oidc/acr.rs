//! `acr` values: names for NIST SP 800-63B assurance levels that clients ask for with
//! `acr_values` (step-up, capability S3) and find in ID tokens.

use crate::login::Aal;

/// An authentication context class Wardgate can assert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acr(pub Aal);

impl Acr {
    pub const ALL: [Acr; 3] = [Acr(Aal::Aal1), Acr(Aal::Aal2), Acr(Aal::Aal3)];

    pub fn as_str(self) -> &'static str {
        match self.0 {
            Aal::Aal1 => "urn:wardgate:aal1",
            Aal::Aal2 => "urn:wardgate:aal2",
            Aal::Aal3 => "urn:wardgate:aal3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The lowest of the requested values this server knows, per OIDC Core §5.5.1.1
    /// (`acr_values` is a preference list; asking for several means any will do, so the
    /// weakest one the client accepts is enough). `None` when none is known.
    pub fn weakest_of(requested: &str) -> Option<Self> {
        requested.split_whitespace().filter_map(Self::parse).min()
    }

    pub fn satisfied_by(self, reached: Aal) -> bool {
        reached >= self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_order_by_assurance() {
        for a in Acr::ALL {
            assert_eq!(Acr::parse(a.as_str()), Some(a));
        }
        assert_eq!(Acr::weakest_of("urn:wardgate:aal3 urn:wardgate:aal2"), Some(Acr(Aal::Aal2)));
        assert_eq!(Acr::weakest_of("urn:other:gold urn:wardgate:aal3"), Some(Acr(Aal::Aal3)));
        assert_eq!(Acr::weakest_of("urn:other:gold"), None);
        assert!(Acr(Aal::Aal2).satisfied_by(Aal::Aal3));
        assert!(!Acr(Aal::Aal3).satisfied_by(Aal::Aal2));
    }
}
