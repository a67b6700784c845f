//! What the integration tests share: a scriptable HTTP server ([`http`]) and a real SMTP
//! server ([`smtp`]) on loopback, a site on disk that runs the real binary ([`site`]),
//! `paper-digest serve` in a child process ([`serve`]), and the fixture digest ([`digest`]).

pub mod digest;
pub mod http;
pub mod serve;
pub mod site;
pub mod smtp;
