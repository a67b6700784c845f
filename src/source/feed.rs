//! (stub: being written)

use super::Window;
use super::http::HttpClient;
use crate::config::FeedSettings;
use crate::error::Result;
use crate::model::Paper;

#[derive(Debug)]
pub struct Feed {
    name: String,
}

impl Feed {
    pub fn new(_s: &FeedSettings) -> Self {
        Feed { name: "feed".into() }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub async fn fetch(&self, _client: &HttpClient, _window: &Window) -> Result<Vec<Paper>> {
        Ok(Vec::new())
    }
}
