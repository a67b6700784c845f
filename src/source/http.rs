//! The polite HTTP client every source shares. (stub: being written)

use crate::config::HttpSettings;
use crate::error::Result;
use std::collections::HashMap;
use std::time::Duration;

/// Cache validators remembered per URL for conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The answer to a GET.
#[derive(Debug)]
pub enum Fetched {
    Body(Vec<u8>),
    NotModified,
}

#[derive(Debug)]
pub struct HttpClient {}

impl HttpClient {
    pub fn new(_settings: &HttpSettings, _validators: HashMap<String, Validators>) -> Result<Self> {
        Ok(HttpClient {})
    }
    pub fn set_min_gap(&self, _host: &str, _gap: Duration) {}
    pub async fn get(&self, _url: &str) -> Result<Fetched> {
        Ok(Fetched::NotModified)
    }
    pub fn validators(&self) -> HashMap<String, Validators> {
        HashMap::new()
    }
}
