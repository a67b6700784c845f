//! (stub: being written)

use super::Window;
use super::http::HttpClient;
use crate::config::HuggingFaceSettings;
use crate::error::Result;
use crate::model::Paper;

#[derive(Debug)]
pub struct HuggingFace {
    name: String,
}

impl HuggingFace {
    pub fn new(_s: &HuggingFaceSettings) -> Self {
        HuggingFace { name: "huggingface".into() }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub async fn fetch(&self, _client: &HttpClient, _window: &Window) -> Result<Vec<Paper>> {
        Ok(Vec::new())
    }
}
