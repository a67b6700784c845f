//! (stub: being written)

use super::Window;
use super::http::HttpClient;
use crate::config::ArxivSettings;
use crate::error::Result;
use crate::model::Paper;

#[derive(Debug)]
pub struct Arxiv {
    name: String,
}

impl Arxiv {
    pub fn new(_s: &ArxivSettings) -> Self {
        Arxiv { name: "arxiv".into() }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub async fn fetch(&self, _client: &HttpClient, _window: &Window) -> Result<Vec<Paper>> {
        Ok(Vec::new())
    }
}
