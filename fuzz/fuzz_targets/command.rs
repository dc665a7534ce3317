//! Random sessions of commands through the real dispatcher against an in-process node
//! (the session format and the checks are in `prism_fuzz`'s doc): no panic, every reply
//! well-formed RESP.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prism_fuzz::run_session(data));
