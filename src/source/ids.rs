//! Paper identity across sources: arXiv ids, DOIs and canonical URLs, normalized so the
//! same paper reported by Hugging Face, the arXiv API and a feed gets one [`PaperId`].

use crate::model::PaperId;
use url::Url;

/// The bare arXiv id (no `arXiv:` prefix, no version, no URL) of `s`, or `None` when `s`
/// is not an arXiv id.
///
/// Accepts `2411.16500`, `arXiv:2411.16500v2`, `https://arxiv.org/abs/2411.16500v1`,
/// `http://arxiv.org/pdf/2411.16500v1.pdf`, `oai:arXiv.org:2411.16500v2`, old-style
/// `hep-th/9901001` and `math.GT/0309136`. Old-style ids lose their subject class
/// (`math.GT/0309136` → `math/0309136`) because arXiv files the paper under the archive
/// alone, so both spellings must meet as one paper.
pub fn normalize_arxiv(s: &str) -> Option<String> {
    let s = s.trim();
    let s = strip_prefix_ci(s, "oai:arxiv.org:").or_else(|| strip_prefix_ci(s, "arxiv:")).unwrap_or(s);
    let s = arxiv_url_path(s).unwrap_or(s).trim();
    let s = s.strip_suffix('/').unwrap_or(s);
    let s = strip_suffix_ci(s, ".pdf").unwrap_or(s);
    let s = strip_version(s);
    new_style(s).or_else(|| old_style(s))
}

/// Finds the first arXiv id that `text` names explicitly: an arxiv.org abs/pdf/html URL,
/// `arXiv:ID` or `oai:arXiv.org:ID`. Bare numbers are ignored on purpose: in free text
/// `2411.16500` may be anything.
pub fn find_arxiv(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    for marker in ["arxiv.org/abs/", "arxiv.org/pdf/", "arxiv.org/html/", "oai:arxiv.org:", "arxiv:"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(marker) {
            let start = from + found + marker.len();
            from = start;
            if let Some(id) = normalize_arxiv(id_token(&text[start..])) {
                return Some(id);
            }
        }
    }
    None
}

/// The arXiv id a link names as its own page: an arxiv.org abs/pdf/html URL, or the
/// page of that paper on a known aggregator (`tldr.takara.ai/p/ID`,
/// `huggingface.co/papers/ID`, `alphaxiv.org/abs/ID`, `paperswithcode.com/paper/ID`).
/// Any other link, and any other path on those hosts, names no paper.
pub fn arxiv_from_link(link: &str) -> Option<String> {
    let url = Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let section: &[&str] = match host {
        "arxiv.org" | "export.arxiv.org" => &["abs", "pdf", "html"],
        "tldr.takara.ai" => &["p"],
        "huggingface.co" | "hf.co" => &["papers"],
        "alphaxiv.org" => &["abs", "overview", "pdf"],
        "paperswithcode.com" => &["paper", "arxiv"],
        _ => return None,
    };
    let (first, id) = match segments.as_slice() {
        [first, id] => (*first, (*id).to_string()),
        // Old-style ids have a slash of their own: /abs/hep-th/9901001.
        [first, archive, number] => (*first, format!("{archive}/{number}")),
        _ => return None,
    };
    if !section.contains(&first) {
        return None;
    }
    let id = strip_suffix_ci(&id, ".pdf").unwrap_or(&id);
    normalize_arxiv(id)
}

/// The lowercased bare DOI (`10.1038/s41586-024-0001-x`) of a DOI, `doi:` string or
/// doi.org URL, or `None`.
pub fn normalize_doi(s: &str) -> Option<String> {
    let s = s.trim();
    let mut rest = s;
    for prefix in [
        "https://doi.org/",
        "http://doi.org/",
        "https://dx.doi.org/",
        "http://dx.doi.org/",
        "doi.org/",
        "info:doi/",
        "doi:",
    ] {
        if let Some(r) = strip_prefix_ci(rest, prefix) {
            rest = r.trim_start();
            break;
        }
    }
    let doi = rest.trim_end_matches(['.', ',', ';', ')', ']', '"', '\'']);
    let (prefix, suffix) = doi.split_once('/')?;
    let registrant = prefix.strip_prefix("10.")?;
    let valid_registrant = !registrant.is_empty()
        && registrant.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let valid_suffix = !suffix.is_empty() && !suffix.chars().any(|c| c.is_whitespace() || c.is_control());
    (valid_registrant && valid_suffix).then(|| doi.to_lowercase())
}

/// Finds the first DOI that `text` names explicitly (`doi.org/...` or `doi:10....`).
pub fn find_doi(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    for marker in ["doi.org/", "doi:"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(marker) {
            let start = from + found + marker.len();
            from = start;
            let token = text[start..].trim_start();
            let end = token
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>'))
                .unwrap_or(token.len());
            if let Some(doi) = normalize_doi(&token[..end]) {
                return Some(doi);
            }
        }
    }
    None
}

/// The canonical form of an http(s) URL: scheme and host lowercased, default port,
/// fragment and tracking parameters (`utm_*`, `fbclid`, `gclid`) dropped, no trailing
/// slash. `None` for anything that is not an http(s) URL.
pub fn canonical_url(s: &str) -> Option<String> {
    let mut url = Url::parse(s.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_fragment(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(k.starts_with("utm_") || k == "fbclid" || k == "gclid")
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    let mut out = url.to_string();
    if url.query().is_none() && out.ends_with('/') {
        out.pop();
    }
    Some(out)
}

impl PaperId {
    /// The key of the paper `s` names, in any form a user or a source writes it: an arXiv
    /// id in any spelling [`normalize_arxiv`] accepts or a link [`arxiv_from_link`] reads,
    /// a DOI (bare, `doi:` or a doi.org URL), an http(s) URL (`url:` prefix optional), or
    /// an existing key. Anything else is kept as written (trimmed), so a key this function
    /// built comes back unchanged.
    pub fn parse(s: &str) -> PaperId {
        let s = s.trim();
        if let Some(arxiv) = normalize_arxiv(s).or_else(|| arxiv_from_link(s)) {
            return arxiv_key(&arxiv);
        }
        if let Some(doi) = normalize_doi(s) {
            return doi_key(&doi);
        }
        let url = strip_prefix_ci(s, "url:").unwrap_or(s);
        match canonical_url(url) {
            Some(canonical) => url_key(&canonical),
            None => PaperId(s.to_string()),
        }
    }
}

/// The key of an arXiv paper.
pub fn arxiv_key(id: &str) -> PaperId {
    PaperId(id.to_string())
}

/// The key of a paper known by its DOI (already normalized).
pub fn doi_key(doi: &str) -> PaperId {
    PaperId(format!("doi:{doi}"))
}

/// The key of a paper known only by its canonical URL.
pub fn url_key(canonical: &str) -> PaperId {
    PaperId(format!("url:{canonical}"))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

/// The id part of an arxiv.org abs/pdf/html URL, with query and fragment cut off.
fn arxiv_url_path(s: &str) -> Option<&str> {
    let rest = strip_prefix_ci(s, "https://").or_else(|| strip_prefix_ci(s, "http://")).unwrap_or(s);
    let rest = strip_prefix_ci(rest, "www.").or_else(|| strip_prefix_ci(rest, "export.")).unwrap_or(rest);
    let rest = strip_prefix_ci(rest, "arxiv.org/")?;
    let rest = ["abs/", "pdf/", "html/"].iter().find_map(|p| strip_prefix_ci(rest, p))?;
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Cuts a trailing `v<digits>`.
fn strip_version(s: &str) -> &str {
    let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits == s.len() {
        return s;
    }
    let cut = s.len() - digits;
    match s.as_bytes().get(cut - 1) {
        Some(b'v' | b'V') if cut >= 2 => &s[..cut - 1],
        _ => s,
    }
}

/// `YYMM.NNNN` (2007–2014) or `YYMM.NNNNN` (2015 on).
fn new_style(s: &str) -> Option<String> {
    let (yymm, number) = s.split_once('.')?;
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if yymm.len() != 4 || !all_digits(yymm) || !all_digits(number) || !valid_month(&yymm[2..]) {
        return None;
    }
    // The scheme started in April 2007; numbers grew to five digits in January 2015.
    let digits = match yymm.parse::<u16>().ok()? {
        704..=1412 => 4,
        1501.. => 5,
        _ => return None,
    };
    (number.len() == digits).then(|| s.to_string())
}

/// `archive/YYMMNNN` or `archive.SC/YYMMNNN`, archive lowercased, subject class dropped.
fn old_style(s: &str) -> Option<String> {
    let (archive, number) = s.split_once('/')?;
    let archive = archive.split_once('.').map_or(archive, |(a, _subject_class)| a).to_ascii_lowercase();
    let archive_ok = !archive.is_empty()
        && archive.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        && !archive.starts_with('-')
        && !archive.ends_with('-');
    if !archive_ok || number.len() != 7 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    valid_month(&number[2..4]).then(|| format!("{archive}/{number}"))
}

fn valid_month(mm: &str) -> bool {
    matches!(mm.parse::<u8>(), Ok(1..=12))
}

/// The id-shaped run at the start of `s`: letters, digits, `.`, `-`, `/`, and a `v` suffix.
fn id_token(s: &str) -> &str {
    let s = s.trim_start();
    let end =
        s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '/'))).unwrap_or(s.len());
    s[..end].trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arxiv_ids_lose_prefix_version_and_url() {
        for s in [
            "2411.16500",
            "arXiv:2411.16500v2",
            "ARXIV:2411.16500",
            "  2411.16500V3 ",
            "https://arxiv.org/abs/2411.16500v1",
            "http://arxiv.org/abs/2411.16500",
            "https://arxiv.org/pdf/2411.16500v1.pdf",
            "https://arxiv.org/pdf/2411.16500",
            "https://export.arxiv.org/abs/2411.16500v2?context=cs#x",
            "http://www.arxiv.org/abs/2411.16500/",
            "oai:arXiv.org:2411.16500v2",
        ] {
            assert_eq!(normalize_arxiv(s).as_deref(), Some("2411.16500"), "{s}");
        }
    }

    #[test]
    fn old_style_ids_keep_their_archive_and_drop_the_subject_class() {
        assert_eq!(normalize_arxiv("hep-th/9901001").as_deref(), Some("hep-th/9901001"));
        assert_eq!(normalize_arxiv("HEP-TH/9901001v2").as_deref(), Some("hep-th/9901001"));
        assert_eq!(normalize_arxiv("math.GT/0309136").as_deref(), Some("math/0309136"));
        assert_eq!(
            normalize_arxiv("https://arxiv.org/abs/math.GT/0309136v1").as_deref(),
            Some("math/0309136")
        );
        assert_eq!(normalize_arxiv("0704.0001").as_deref(), Some("0704.0001"));
    }

    #[test]
    fn things_that_are_not_arxiv_ids_are_refused() {
        for s in [
            "",
            "v2",
            "2411.1650",
            "2411.165000",
            "2413.16500",
            "hep-th/990100",
            "10.1038/x",
            "abc",
            "/9901001",
            "2411.16500v",
        ] {
            assert_eq!(normalize_arxiv(s), None, "{s}");
        }
    }

    #[test]
    fn arxiv_ids_are_found_in_descriptions_and_guids() {
        assert_eq!(find_arxiv("arXiv:2411.16500v2 Announce Type: new").as_deref(), Some("2411.16500"));
        assert_eq!(
            find_arxiv("see <a href=\"https://arxiv.org/abs/2411.16501\">here</a>").as_deref(),
            Some("2411.16501")
        );
        assert_eq!(find_arxiv("oai:arXiv.org:hep-th/9901001v1").as_deref(), Some("hep-th/9901001"));
        assert_eq!(find_arxiv("we improve by 2411.16500 percent"), None);
    }

    #[test]
    fn aggregator_pages_name_their_paper_and_other_links_do_not() {
        for link in [
            "https://arxiv.org/abs/2411.16500v2",
            "https://tldr.takara.ai/p/2411.16500",
            "https://huggingface.co/papers/2411.16500",
            "https://www.alphaxiv.org/abs/2411.16500v1",
            "https://www.alphaxiv.org/overview/2411.16500",
            "https://paperswithcode.com/paper/2411.16500",
        ] {
            assert_eq!(arxiv_from_link(link).as_deref(), Some("2411.16500"), "{link}");
        }
        assert_eq!(
            arxiv_from_link("https://arxiv.org/abs/hep-th/9901001").as_deref(),
            Some("hep-th/9901001")
        );
        for link in [
            "https://bair.berkeley.edu/blog/2026/04/12/world-models/?ref=arxiv.org/abs/1312.6199",
            "https://huggingface.co/datasets/2411.16500",
            "https://tldr.takara.ai/",
            "https://example.org/p/2411.16500",
            "https://huggingface.co/papers/2411.16500/discussion",
        ] {
            assert_eq!(arxiv_from_link(link), None, "{link}");
        }
    }

    #[test]
    fn every_form_of_a_paper_id_gives_the_same_key() {
        let forms: [(&str, &[&str]); 4] = [
            (
                "2405.12345",
                &[
                    "2405.12345",
                    " arXiv:2405.12345v2 ",
                    "https://arxiv.org/abs/2405.12345v1",
                    "http://arxiv.org/pdf/2405.12345v3.pdf",
                    "oai:arXiv.org:2405.12345v2",
                    "https://huggingface.co/papers/2405.12345",
                ],
            ),
            (
                "hep-th/9901001",
                &[
                    "hep-th/9901001",
                    "HEP-TH/9901001v2",
                    "oai:arXiv.org:hep-th/9901001",
                    "https://arxiv.org/abs/hep-th/9901001v1",
                ],
            ),
            ("doi:10.1000/xyz", &["10.1000/XYZ", "doi:10.1000/xyz", "https://doi.org/10.1000/XYZ"]),
            (
                "url:https://example.org/post",
                &["https://Example.org/post/?utm_source=rss", "url:https://example.org/post"],
            ),
        ];
        for (key, spellings) in forms {
            for s in spellings {
                assert_eq!(PaperId::parse(s).as_str(), key, "{s}");
            }
        }
        assert_eq!(PaperId::parse(" not an id ").as_str(), "not an id");
    }

    proptest::proptest! {
        #[test]
        fn a_key_parses_back_to_itself(s in "\\PC{0,40}") {
            let key = PaperId::parse(&s);
            proptest::prop_assert_eq!(PaperId::parse(key.as_str()), key);
        }
    }

    #[test]
    fn dois_are_lowercased_and_unwrapped() {
        assert_eq!(
            normalize_doi("https://doi.org/10.1038/S41586-024-0001-X").as_deref(),
            Some("10.1038/s41586-024-0001-x")
        );
        assert_eq!(normalize_doi("doi:10.5555/pd.2024.001.").as_deref(), Some("10.5555/pd.2024.001"));
        assert_eq!(
            normalize_doi("http://dx.doi.org/10.1103/PhysRevD.1.1").as_deref(),
            Some("10.1103/physrevd.1.1")
        );
        assert_eq!(normalize_doi("10.abc/x"), None);
        assert_eq!(normalize_doi("11.1000/x"), None);
        assert_eq!(find_doi("Published as doi:10.5555/abc.1 in X").as_deref(), Some("10.5555/abc.1"));
    }

    #[test]
    fn canonical_urls_drop_tracking_fragment_and_trailing_slash() {
        assert_eq!(
            canonical_url("HTTPS://Example.ORG:443/Blog/Post/?utm_source=rss&id=3#comments").as_deref(),
            Some("https://example.org/Blog/Post?id=3")
        );
        assert_eq!(canonical_url("https://example.org/").as_deref(), Some("https://example.org"));
        assert_eq!(canonical_url("file:///etc/passwd"), None);
        assert_eq!(canonical_url("not a url"), None);
    }
}
