//! (crate under construction — see its issue)
