//! The rendered digest: snapshots of the HTML and text parts for a fixed fixture and date,
//! structural checks a mail client cares about, escaping, the size budget, LaTeX, and
//! template overrides.

use paper_digest::model::{Paper, PaperId, Ranked};
use paper_digest::render::{DigestContext, MAX_MESSAGE_BYTES, ReaderLinks, Rendered, Renderer};
use scraper::{Html, Selector};

use crate::support::digest;

use digest::{config, edition, papers, rank, render};

fn alice_digest(max: usize) -> Rendered {
    let cfg = config();
    let papers = papers();
    let sub = &cfg.subscribers[0];
    render(sub, &rank(&cfg, sub, &papers, max))
}

// ---------------------------------------------------------------------------------------
// Snapshots

#[test]
fn html_part_matches_the_snapshot() {
    insta::assert_snapshot!("digest_html", alice_digest(10).html);
}

#[test]
fn text_part_matches_the_snapshot() {
    insta::assert_snapshot!("digest_text", alice_digest(10).text);
}

#[test]
fn subject_names_the_count_topics_and_date() {
    assert_eq!(alice_digest(7).subject, "7 new papers on gaussian-splatting, llm-reasoning · Nov 27");
    let cfg = config();
    let papers = papers();
    let bob = &cfg.subscribers[1];
    let digest = render(bob, &rank(&cfg, bob, &papers, 7));
    assert_eq!(digest.subject, "7 trending papers · Nov 27");
    let one = render(&cfg.subscribers[0], &rank(&cfg, &cfg.subscribers[0], &papers, 1));
    assert!(one.subject.starts_with("1 new paper on "), "{}", one.subject);
}

#[test]
fn an_empty_digest_says_so() {
    let cfg = config();
    let digest = render(&cfg.subscribers[0], &[]);
    assert_eq!(digest.subject, "No new papers on gaussian-splatting, llm-reasoning · Nov 27");
    assert!(digest.text.contains("Nothing new matched your topics"));
    assert!(digest.html.contains("Nothing new matched your topics"));
}

// ---------------------------------------------------------------------------------------
// Structure

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).expect("a valid selector")).collect()
}

/// What every HTML part must hold to: parses, links absolute https, nothing active or
/// remote.
fn assert_client_safe(html: &str) {
    let doc = Html::parse_document(html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let links = select(&doc, "a");
    assert!(!links.is_empty());
    for a in links {
        let href = a.value().attr("href").expect("every link has an href");
        let url = url::Url::parse(href).unwrap_or_else(|e| panic!("{href} is not absolute: {e}"));
        assert_eq!(url.scheme(), "https", "{href}");
        assert!(url.host_str().is_some(), "{href}");
    }
    assert!(select(&doc, "script").is_empty(), "no <script>");
    assert!(select(&doc, "link").is_empty(), "no external stylesheet");
    assert!(select(&doc, "iframe, object, embed, form").is_empty());
    for img in select(&doc, "img") {
        assert!(img.value().attr("alt").is_some(), "every image has alt text");
    }
    for el in select(&doc, "*") {
        for (name, _) in el.value().attrs() {
            assert!(!name.starts_with("on"), "no event handler attributes: {name}");
        }
    }
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("@import") && !lower.contains("display: flex") && !lower.contains("display:flex")
    );
    assert!(!lower.contains("display:grid") && !lower.contains("display: grid"));
}

/// Lines a terminal mail reader shows without wrapping: ≤ 78 characters, URLs excepted.
fn assert_text_lines_fit(text: &str) {
    for line in text.lines() {
        let n = line.chars().count();
        assert!(n <= 78 || line.contains("https://"), "{n} characters: {line:?}");
    }
}

#[test]
fn html_is_client_safe_and_styled_inline() {
    let digest = alice_digest(10);
    assert_client_safe(&digest.html);
    let doc = Html::parse_document(&digest.html);
    let card = select(&doc, "td.card");
    assert_eq!(card.len(), 10);
    assert!(card[0].value().attr("style").is_some_and(|s| s.contains("background-color")));
    // Dark mode needs both the meta tag and explicit backgrounds.
    assert!(select(&doc, "meta[name=color-scheme]").len() == 1);
    assert!(
        digest.html.contains("prefers-color-scheme: dark")
            || digest.html.contains("prefers-color-scheme:dark")
    );
    // The preheader leads, hidden.
    let pre = select(&doc, "div.preheader");
    assert!(pre[0].text().collect::<String>().trim().starts_with("10 new papers · top: "));
    assert!(pre[0].value().attr("style").is_some_and(|s| s.contains("display:none")));
}

#[test]
fn text_part_is_wrapped_for_terminals_and_has_every_link() {
    let digest = alice_digest(10);
    assert_text_lines_fit(&digest.text);
    let doc = Html::parse_document(&digest.html);
    for a in select(&doc, "a") {
        let href = a.value().attr("href").expect("href");
        assert!(digest.text.contains(href), "the text part lacks {href}");
    }
    assert!(!digest.text.to_lowercase().contains("view the html"));
}

#[test]
fn each_card_shows_authors_summary_chips_and_links() {
    let digest = alice_digest(10);
    let doc = Html::parse_document(&digest.html);
    let first = &select(&doc, "td.card")[0];
    let text: String = first.text().collect();
    assert!(text.contains("upvote"), "{text}");
    assert!(select(&doc, "td.card .chip.topic").len() == 10);
    assert!(text.contains("matched: "), "{text}");
    let labels: Vec<String> = select(&doc, "td.card a.link").iter().map(|a| a.text().collect()).collect();
    assert!(labels.iter().any(|l| l == "arXiv") && labels.iter().any(|l| l == "PDF"));
    // Authors: first three, then "et al.".
    assert!(digest.text.contains(" et al."));
}

// ---------------------------------------------------------------------------------------
// Escaping and LaTeX

#[test]
fn markup_in_titles_arrives_escaped_and_harmless() {
    let cfg = config();
    let paper = Paper {
        id: PaperId("2411.99999".into()),
        title: "<script>alert(1)</script> & \"Quotes\" \u{202E}reversed\u{7}".into(),
        summary: "An <img src=x onerror=alert(1)> abstract. It <b>claims</b> p<0.05 with 3 < 4.".into(),
        authors: vec!["<i>Mallory</i>".into()],
        url: Some("javascript:alert(1)".into()),
        code_url: Some("http://github.com/x/y".into()),
        ..Paper::default()
    };
    let ranked = [Ranked { paper: &paper, score: 1.0, topic: Some("llm-reasoning".into()), matched: vec![] }];
    let digest = render(&cfg.subscribers[0], &ranked);

    assert_client_safe(&digest.html);
    assert!(!digest.html.contains("<script>"));
    assert!(digest.html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp;"));
    assert!(!digest.html.contains("<img") && !digest.html.contains("onerror"));
    assert!(!digest.html.contains("javascript:"));
    // The upgraded code link is the only one beside arXiv and PDF.
    assert!(digest.html.contains("https://github.com/x/y"));
    // Text: the same words, but no control or bidi characters.
    assert!(digest.text.contains("<script>alert(1)</script> & \"Quotes\" reversed"));
    assert!(!digest.text.contains('\u{202E}') && !digest.text.contains('\u{7}'));
    assert!(digest.text.contains("It claims p<0.05 with 3 < 4."), "{}", digest.text);
    assert!(!digest.subject.contains('\n'));
}

#[test]
fn latex_in_titles_is_made_readable() {
    let cfg = config();
    let papers = papers();
    let pick = |id: &str| papers.iter().find(|p| p.id.as_str() == id).expect("fixture paper");
    let ranked: Vec<Ranked<'_>> = ["2411.16517", "2411.16526", "2411.16570"]
        .into_iter()
        .map(|id| Ranked { paper: pick(id), score: 1.0, topic: None, matched: vec![] })
        .collect();
    let digest = render(&cfg.subscribers[1], &ranked);
    for part in [&digest.html, &digest.text] {
        assert!(part.contains("PixArt-α: Fast Training"), "{part}");
        assert!(part.contains("E²GAN: Efficient Training"));
        assert!(!part.contains('$'));
        assert!(!part.contains("{\\it"));
    }
}

// ---------------------------------------------------------------------------------------
// Size

#[test]
fn fifty_papers_stay_under_the_size_budget_and_none_is_lost() {
    let cfg = config();
    let papers = papers();
    let carol = &cfg.subscribers[2];
    let ranked = rank(&cfg, carol, &papers, 50);
    assert_eq!(ranked.len(), 50);
    let digest = render(carol, &ranked);
    let size = digest.html.len() + digest.text.len();
    assert!(size < MAX_MESSAGE_BYTES - 8 * 1024, "{size} bytes");
    assert_client_safe(&digest.html);
    assert_text_lines_fit(&digest.text);
    for r in &ranked {
        let title = paper_digest::render::latex::to_unicode(&r.paper.title);
        let first_word = title.split_whitespace().next().expect("a title");
        assert!(digest.text.contains(first_word), "{} is missing", r.paper.title);
        assert!(digest.text.contains(r.paper.id.as_str()), "{} is missing", r.paper.id);
    }
}

#[test]
fn a_huge_digest_moves_the_overflow_to_title_lines() {
    let cfg = config();
    let papers = papers();
    let bob = &cfg.subscribers[1];
    let ranked = rank(&cfg, bob, &papers, papers.len());
    let digest = render(bob, &ranked);
    assert!(digest.html.len() + digest.text.len() < MAX_MESSAGE_BYTES - 8 * 1024);
    assert!(digest.html.contains("More matches"));
    assert!(digest.text.contains("MORE MATCHES"));
    assert_client_safe(&digest.html);
    assert_text_lines_fit(&digest.text);
}

/// Every element's tag, class, style and width from `<body>` on, in document order;
/// `<tbody>`, which the HTML parser adds to every table, left out.
fn element_styles(html: &str) -> Vec<[Option<String>; 4]> {
    let doc = Html::parse_document(html);
    select(&doc, "body, body *")
        .into_iter()
        .filter(|e| e.value().name() != "tbody")
        .map(|e| {
            let attr = |name| e.value().attr(name).map(str::to_string);
            [Some(e.value().name().to_string()), attr("class"), attr("style"), attr("width")]
        })
        .collect()
}

/// CSS is worked out once per element shape (src/render/inline.rs) when the stylesheet's
/// selectors are plain; a selector that looks at context sends every message through
/// css-inline whole. Both must style every element alike, in every layout.
#[test]
fn styles_worked_out_once_match_inlining_each_whole_message() {
    let builtin = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/style.css"))
        .expect("templates/style.css");
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("style.css"), format!("{builtin}\n.card .never-used {{ color: red; }}\n"))
        .expect("write");
    let whole = Renderer::new(Some(dir.path())).expect("the override compiles");
    let cached = Renderer::new(None).expect("the built-in templates compile");
    let cfg = config();
    let papers = papers();
    for (sub, max) in [(0, 0), (0, 3), (1, 10), (2, 50)] {
        let sub = &cfg.subscribers[sub];
        let ranked = rank(&cfg, sub, &papers, max);
        let ctx = DigestContext {
            subscriber: sub,
            edition: edition(),
            papers: &ranked,
            unsubscribe_url: Some("https://digest.example.org/unsubscribe"),
            unsubscribe_mailto: None,
        };
        let fast = cached.render(&ctx).expect("renders");
        let slow = whole.render(&ctx).expect("renders");
        assert_ne!(fast.html, slow.html, "the two ways were both taken");
        assert_eq!(element_styles(&fast.html), element_styles(&slow.html), "{max} papers");
        assert_eq!(fast.text, slow.text);
    }
}

// ---------------------------------------------------------------------------------------
// Template overrides

#[test]
fn a_file_in_the_templates_folder_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("subject.txt"), "Reading list for {{ subscriber.email }}: {{ count }}\n")
        .expect("write");
    let cfg = config();
    let papers = papers();
    let sub = &cfg.subscribers[0];
    let ranked = rank(&cfg, sub, &papers, 3);
    let renderer = Renderer::new(Some(dir.path())).expect("the override compiles");
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let digest = renderer.render(&ctx).expect("renders");
    assert_eq!(digest.subject, "Reading list for alice@example.org: 3");
    // The others stay built in.
    assert!(digest.html.contains("More matches") || digest.html.contains("class=\"card\""));
}

/// An override of digest.html written before the card partials existed (every card field
/// spelt out, no `paper.html`) renders the same digest as the built-in templates.
#[test]
fn a_digest_override_that_does_not_use_the_card_partials_still_renders_every_card() {
    let builtin = |name: &str| {
        std::fs::read_to_string(format!("{}/templates/{name}", env!("CARGO_MANIFEST_DIR")))
            .expect("a template")
    };
    let card_html = builtin("card.html");
    let block = |source: &str, name: &str| {
        let start = source.find(&format!("{{% block {name} %}}\n")).expect("the block") + name.len() + 13;
        source[start..].split("{% endblock %}").next().expect("its end").to_string()
    };
    let html = builtin("digest.html")
        .replace("{{ paper.html.main -}}\n", &block(&card_html, "main"))
        .replace("{{ paper.html.links -}}\n", &block(&card_html, "links"));
    assert!(!html.contains("paper.html"));
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("digest.html"), html).expect("write");
    let old = Renderer::new(Some(dir.path())).expect("the override compiles");
    let builtin = Renderer::new(None).expect("the built-in templates compile");
    let cfg = config();
    let papers = papers();
    for (sub, max) in [(0, 10), (2, 50)] {
        let sub = &cfg.subscribers[sub];
        let ranked = rank(&cfg, sub, &papers, max);
        let ctx = DigestContext {
            subscriber: sub,
            edition: edition(),
            papers: &ranked,
            unsubscribe_url: Some("https://digest.example.org/unsubscribe"),
            unsubscribe_mailto: None,
        };
        assert_eq!(
            old.render(&ctx).expect("renders"),
            builtin.render(&ctx).expect("renders"),
            "{max} papers"
        );
    }
}

/// A card.html override changes every card; what stays per reader (rank, chips) is still
/// the digest's.
#[test]
fn a_card_override_changes_every_card_and_leaves_rank_and_chips_to_the_digest() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("card.html"),
        "{% block main %}<h2 class=\"title\">[{{ paper.title }}]</h2>\n{% endblock %}",
    )
    .expect("write");
    let renderer = Renderer::new(Some(dir.path())).expect("the override compiles");
    let cfg = config();
    let papers = papers();
    let sub = &cfg.subscribers[0];
    let ranked = rank(&cfg, sub, &papers, 3);
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let digest = renderer.render(&ctx).expect("renders");
    let doc = Html::parse_document(&digest.html);
    let titles: Vec<String> = select(&doc, "h2.title").iter().map(|h| h.text().collect()).collect();
    assert_eq!(titles.len(), 3);
    assert!(titles.iter().all(|t| t.starts_with('[') && t.ends_with(']')), "{titles:?}");
    // Styled like the built-in title; no `links` block, so no paper links, but the chips stay.
    assert!(select(&doc, "h2.title")[0].value().attr("style").is_some_and(|s| s.contains("font-size")));
    assert!(select(&doc, "p.links").is_empty());
    assert_eq!(select(&doc, "td.card .chip.topic").len(), 3);
    assert!(digest.html.contains("#3"));
    assert!(!digest.html.contains("paper-digest-card"));
}

/// Cards are shared by every digest of a run; each reader's signed vote and footer links
/// are still their own.
#[test]
fn two_readers_of_the_same_papers_get_their_own_vote_and_footer_links() {
    let renderer = Renderer::new(None).expect("templates");
    let cfg = config();
    let papers = papers();
    let sub = &cfg.subscribers[0];
    let ranked = rank(&cfg, sub, &papers, 3);
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let links = |who: &str| ReaderLinks {
        unsubscribe: format!("https://digest.example.org/u/{who}"),
        manage: format!("https://digest.example.org/m/{who}"),
        archive: format!("https://digest.example.org/a/{who}"),
        votes: ranked
            .iter()
            .map(|r| {
                let id = r.paper.id.clone();
                let urls = (
                    format!("https://digest.example.org/v/{who}/{id}/up"),
                    format!("https://digest.example.org/v/{who}/{id}/down"),
                );
                (id, urls)
            })
            .collect(),
    };
    for who in ["first", "second", "first"] {
        let digest = renderer.render_with_links(&ctx, Some(&links(who))).expect("renders");
        for r in &ranked {
            let up = format!("https://digest.example.org/v/{who}/{}/up", r.paper.id);
            assert!(digest.html.contains(&format!("href=\"{up}\"")) && digest.text.contains(&up), "{up}");
        }
        assert_eq!(digest.html.matches("/v/").count(), 6);
        assert!(digest.html.contains(&format!("https://digest.example.org/m/{who}")));
        assert!(digest.text.contains(&format!("Unsubscribe: https://digest.example.org/u/{who}")));
        assert_client_safe(&digest.html);
    }
}

/// The card partial sees only the paper: a reader's value there is an error naming it.
#[test]
fn a_card_partial_that_asks_for_the_rank_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("card.txt"), "{% block main %}{{ paper.rank }}{% endblock %}")
        .expect("write");
    let renderer = Renderer::new(Some(dir.path())).expect("compiles");
    let cfg = config();
    let papers = papers();
    let sub = &cfg.subscribers[0];
    let ranked = rank(&cfg, sub, &papers, 3);
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let err = renderer.render(&ctx).expect_err("the rank is not a card's");
    assert!(err.to_string().contains("card.txt") && err.to_string().contains("paper.rank"), "{err}");
}

#[test]
fn a_broken_override_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("digest.txt"), "{% for p in papers %}unclosed").expect("write");
    let err = Renderer::new(Some(dir.path())).expect_err("a syntax error is reported");
    let message = err.to_string();
    assert!(message.contains("digest.txt"), "{message}");
}

#[test]
fn a_typo_in_an_override_fails_instead_of_rendering_blanks() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("subject.txt"), "{{ cuont }} papers").expect("write");
    let cfg = config();
    let renderer = Renderer::new(Some(dir.path())).expect("compiles");
    let ctx = DigestContext {
        subscriber: &cfg.subscribers[0],
        edition: edition(),
        papers: &[],
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let err = renderer.render(&ctx).expect_err("an undefined variable is an error");
    assert!(err.to_string().contains("subject.txt"), "{err}");
}

#[test]
fn a_missing_templates_folder_is_an_error_naming_it() {
    let err =
        Renderer::new(Some(std::path::Path::new("/nonexistent/templates"))).expect_err("missing folder");
    assert!(err.to_string().contains("/nonexistent/templates"), "{err}");
}

#[test]
fn the_whole_message_with_fifty_papers_is_under_100_kb() {
    let cfg = config();
    let papers = papers();
    let carol = &cfg.subscribers[2];
    let digest = render(carol, &rank(&cfg, carol, &papers, 50));
    let eml = digest::message(&cfg, carol, &digest);
    assert!(eml.len() < MAX_MESSAGE_BYTES, "{} bytes", eml.len());
    let ten = alice_digest(10);
    let eml = digest::message(&cfg, &cfg.subscribers[0], &ten);
    assert!(eml.len() < MAX_MESSAGE_BYTES / 2, "{} bytes", eml.len());
}

/// Writes Alice's digest to `$PAPER_DIGEST_PREVIEW_OUT` (HTML) for docs/screenshot.png;
/// see docs/email.md. Does nothing without the variable.
#[test]
fn preview_file_for_the_screenshot() {
    let Some(path) = std::env::var_os("PAPER_DIGEST_PREVIEW_OUT") else { return };
    std::fs::write(&path, alice_digest(10).html).expect("write the preview");
}

/// Prints the sizes behind the budget: `cargo test --test it render::sizes -- --ignored --nocapture`.
#[test]
#[ignore = "a report, not a check"]
fn sizes() {
    let cfg = config();
    let papers = papers();
    let renderer = Renderer::new(None).expect("templates");
    for (sub, n) in [(&cfg.subscribers[0], 10), (&cfg.subscribers[2], 10), (&cfg.subscribers[2], 50)] {
        let ranked = rank(&cfg, sub, &papers, n);
        let ctx = DigestContext {
            subscriber: sub,
            edition: digest::edition(),
            papers: &ranked,
            unsubscribe_url: cfg.mail.unsubscribe_url.as_deref(),
            unsubscribe_mailto: None,
        };
        let start = std::time::Instant::now();
        let d = renderer.render(&ctx).expect("renders");
        let took = start.elapsed();
        let eml = digest::message(&cfg, sub, &d);
        let cards =
            Html::parse_document(&d.html).select(&Selector::parse("td.card h2.title").expect("css")).count();
        eprintln!(
            "{} papers for {}: html {} + text {} = {} bytes, .eml {} bytes, {cards} cards, rendered in {took:?}",
            ranked.len(),
            sub.key,
            d.html.len(),
            d.text.len(),
            d.html.len() + d.text.len(),
            eml.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Encoded once per card (#15): the message built from a digest whose parts were assembled
// from per-card quoted-printable is the message lettre builds from the plain text.

/// Renders `papers` for `sub` both ways and checks the encoded digest: same text as the
/// plain render, each part's encoding exactly lettre's for that text when it was assembled,
/// and a message whose parsed, decoded parts are the rendered text.
fn assert_encoded_matches_plain(
    renderer: &Renderer,
    sub: &paper_digest::config::Subscriber,
    papers: &[Ranked<'_>],
) {
    let cfg = config();
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers,
        unsubscribe_url: Some("https://digest.example.org/unsubscribe"),
        unsubscribe_mailto: None,
    };
    let plain = renderer.render(&ctx).expect("renders");
    let encoded = renderer.render_encoded(&ctx, None).expect("renders");
    assert_eq!(plain, Rendered::from(encoded.clone()));
    for (part, text) in [(&encoded.html, &plain.html), (&encoded.text, &plain.text)] {
        if let Some(qp) = &part.quoted_printable {
            let lettre = lettre::message::Body::new(text.clone());
            assert_eq!(lettre.encoding(), lettre::message::header::ContentTransferEncoding::QuotedPrintable);
            assert!(qp == &lettre.into_vec(), "the assembled encoding differs from lettre's");
        }
    }
    let date = "2024-11-27T07:00:00Z".parse().expect("a date");
    let env = paper_digest::mail::Envelope { to: &sub.email, message_id: "<x.1@example.org>", date };
    let eml = paper_digest::mail::build_encoded(&cfg.mail, &env, encoded, None).expect("builds").formatted();
    let body_at = eml.windows(4).position(|w| w == b"\r\n\r\n").expect("a header/body break");
    for line in eml[body_at..].split(|&b| b == b'\n') {
        // 76 characters and the CR (RFC 2045's limit for encoded lines).
        assert!(line.len() <= 77, "a body line of {} bytes on the wire", line.len());
    }
    let parsed = mail_parser::MessageParser::default().parse(&eml).expect("the message parses");
    let crlf = |s: &str| s.replace("\r\n", "\n");
    assert_eq!(crlf(&parsed.body_text(0).expect("a text part")), plain.text);
    assert_eq!(crlf(&parsed.body_html(0).expect("an HTML part")), plain.html);
    assert_eq!(parsed.subject(), Some(plain.subject.as_str()));
}

#[test]
fn digests_encoded_once_per_card_decode_to_the_rendered_text() {
    let cfg = config();
    let papers = papers();
    let renderer = Renderer::new(None).expect("the built-in templates compile");
    for (sub, max) in [(0, 10), (1, 10), (2, 50), (1, papers.len())] {
        let sub = &cfg.subscribers[sub];
        assert_encoded_matches_plain(&renderer, sub, &rank(&cfg, sub, &papers, max));
    }
    // The parts are assembled, not left to lettre, for the built-in templates.
    let sub = &cfg.subscribers[0];
    let ranked = rank(&cfg, sub, &papers, 10);
    let ctx = DigestContext {
        subscriber: sub,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let encoded = renderer.render_encoded(&ctx, None).expect("renders");
    assert!(encoded.html.quoted_printable.is_some());
    assert!(encoded.text.quoted_printable.is_some());
}

/// Titles of 60 to 90 characters with non-ASCII letters and `=` at every position near
/// the 76-character line limit, in both parts.
#[test]
fn lines_near_76_characters_and_non_ascii_survive_encoding_once() {
    let cfg = config();
    let base = papers();
    let fillers = ["é", "東京", "=", "ß=", " ü", "—"];
    let papers: Vec<Paper> = (0..30)
        .map(|n| {
            let mut p = base[n].clone();
            p.id = PaperId(format!("2411.{:05}", 90_000 + n));
            let filler = fillers[n % fillers.len()];
            let head = "x".repeat(60 + n % 16);
            p.title = format!("{head}{filler} Gaussian Splatting {}", "y".repeat(n % 7));
            p.summary = format!("{}{filler} reasoning. {}", "a ".repeat(35 + n), p.summary);
            p
        })
        .collect();
    let renderer = Renderer::new(None).expect("the built-in templates compile");
    let alice = &cfg.subscribers[0];
    for max in [1, 10, 30] {
        let ranked = rank(&cfg, alice, &papers, max);
        assert!(!ranked.is_empty());
        assert_encoded_matches_plain(&renderer, alice, &ranked);
    }
}

/// An override that puts a card mid-line gets that part encoded whole, as lettre would.
#[test]
fn a_card_placed_mid_line_falls_back_to_encoding_the_whole_part() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let source = std::fs::read_to_string(format!("{}/templates/digest.html", env!("CARGO_MANIFEST_DIR")))
        .expect("digest.html");
    let html = source.replace("{{ paper.html.main -}}\n", "<div>{{ paper.html.main }}</div>\n");
    let text = std::fs::read_to_string(format!("{}/templates/digest.txt", env!("CARGO_MANIFEST_DIR")))
        .expect("digest.txt")
        .replace("{{ paper.text.main -}}", ">> {{ paper.text.main | upper -}}");
    std::fs::write(dir.path().join("digest.html"), html).expect("write");
    std::fs::write(dir.path().join("digest.txt"), text).expect("write");
    let renderer = Renderer::new(Some(dir.path())).expect("the override compiles");
    let cfg = config();
    let papers = papers();
    let alice = &cfg.subscribers[0];
    let ranked = rank(&cfg, alice, &papers, 10);
    let ctx = DigestContext {
        subscriber: alice,
        edition: edition(),
        papers: &ranked,
        unsubscribe_url: None,
        unsubscribe_mailto: None,
    };
    let encoded = renderer.render_encoded(&ctx, None).expect("renders");
    assert!(encoded.html.text.contains("<div><h2"));
    let whole = lettre::message::Body::new(encoded.html.text.clone()).into_vec();
    assert!(
        encoded.html.quoted_printable.as_ref() == Some(&whole),
        "not lettre's encoding of the whole part"
    );
    // The filter saw the card's text, not a placeholder.
    assert!(!encoded.text.text.contains('\u{1}'));
    assert!(encoded.text.text.contains(">> \n    HTTPS://") || encoded.text.text.contains("HTTPS://"));
    assert_encoded_matches_plain(&renderer, alice, &ranked);
}
