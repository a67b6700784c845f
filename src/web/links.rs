//! The signed URLs a reader gets: in every digest (unsubscribe, manage, view in browser,
//! the vote links under each card), in the Atom feed and in the confirmation mail.

use super::token::{Purpose, Signer};
use crate::config::WebSettings;
use crate::model::PaperId;
use crate::render::ReaderLinks;
use chrono::NaiveDate;

/// Makes a reader's links under `[web] base_url`.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
    signer: Signer,
}

impl Links {
    pub fn new(web: &WebSettings) -> Self {
        Links {
            base: web.base_url.clone(),
            signer: Signer::new(web.secret.clone(), web.previous_secrets.clone()),
        }
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str, purpose: Purpose, subscriber: &str, payload: &str) -> String {
        format!("{}/{path}/{}", self.base, self.signer.sign(purpose, subscriber, payload))
    }

    /// The one-click unsubscribe URL of `List-Unsubscribe` (RFC 8058) and the footer.
    pub fn unsubscribe(&self, subscriber: &str) -> String {
        self.url("u", Purpose::Unsubscribe, subscriber, "")
    }

    pub fn manage(&self, subscriber: &str) -> String {
        self.url("m", Purpose::Manage, subscriber, "")
    }

    /// One sent edition in the browser.
    pub fn archive(&self, subscriber: &str, edition: NaiveDate) -> String {
        self.url("a", Purpose::Archive, subscriber, &edition.to_string())
    }

    /// The reader's Atom feed of their digests.
    pub fn feed(&self, subscriber: &str) -> String {
        self.url("f", Purpose::Feed, subscriber, "")
    }

    pub fn more_like(&self, subscriber: &str, paper: &PaperId) -> String {
        self.url("more", Purpose::Like, subscriber, paper.as_str())
    }

    pub fn fewer_like(&self, subscriber: &str, paper: &PaperId) -> String {
        self.url("fewer", Purpose::Dislike, subscriber, paper.as_str())
    }

    /// The link of a confirmation mail; `nonce` names the request it confirms.
    pub fn confirm(&self, subscriber: &str, nonce: &str) -> String {
        self.url("c", Purpose::Confirm, subscriber, nonce)
    }

    /// Everything one digest links to.
    pub fn for_digest<'p>(
        &self,
        subscriber: &str,
        edition: NaiveDate,
        papers: impl IntoIterator<Item = &'p PaperId>,
    ) -> ReaderLinks {
        ReaderLinks {
            unsubscribe: self.unsubscribe(subscriber),
            manage: self.manage(subscriber),
            archive: self.archive(subscriber, edition),
            votes: papers
                .into_iter()
                .map(|id| (id.clone(), (self.more_like(subscriber, id), self.fewer_like(subscriber, id))))
                .collect(),
        }
    }
}
