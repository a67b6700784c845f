//! The optional static embedding model (`digest.embedding_model`, `--features embeddings`)
//! through the real binary. No model is downloaded: the tests write a tiny model2vec
//! model of their own (a BERT-style WordPiece `tokenizer.json`, `model.safetensors`,
//! `config.json`, the layout of minishlab's published models) whose few words put
//! "tracking" and "frames" beside "video". A build without the feature refuses the key.
//!
//! `cargo test --features embeddings --test it meaning::` runs the model's tests.

use super::support::site::{Site, code, hf_server, stderr};
use super::support::smtp::{Faults, SmtpServer};

/// A reader of the video topic with room for everything it selects.
const VIDEO_READER: &str = r#"
[[subscribers]]
email = "vera@example.org"
topics = ["video"]
max_papers = 40
"#;

#[cfg(not(feature = "embeddings"))]
#[test]
fn a_build_without_the_feature_refuses_a_model_naming_the_key_and_the_feature() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers(&http.url(), smtp.port(), "embedding_model = \"model\"", VIDEO_READER);
    std::fs::create_dir(site.path("model")).unwrap();
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("digest.embedding_model") && err.contains("`embeddings` feature"), "{err}");
    assert!(smtp.messages().is_empty());
}

#[cfg(feature = "embeddings")]
mod with_the_feature {
    use super::*;
    use safetensors::tensor::{Dtype, TensorView};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn stdout(out: &std::process::Output) -> String {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Words and the direction they point in: 0 moving images, 1 language, 2 anything
    /// else a paper says. Real static models give frequent words small vectors; so does
    /// this one.
    const WORDS: &[(&str, [f32; 3])] = &[
        ("video", [1.0, 0.0, 0.0]),
        ("videos", [1.0, 0.0, 0.0]),
        ("frames", [0.9, 0.0, 0.1]),
        ("frame", [0.9, 0.0, 0.1]),
        ("tracking", [0.9, 0.0, 0.1]),
        ("tracker", [0.9, 0.0, 0.1]),
        ("trackers", [0.9, 0.0, 0.1]),
        ("temporal", [0.8, 0.0, 0.2]),
        ("motion", [0.8, 0.0, 0.2]),
        ("action", [0.6, 0.1, 0.3]),
        ("language", [0.0, 1.0, 0.0]),
        ("reasoning", [0.0, 1.0, 0.0]),
        ("llm", [0.0, 1.0, 0.0]),
        ("llms", [0.0, 1.0, 0.0]),
        ("text", [0.0, 0.9, 0.1]),
        ("model", [0.05, 0.05, 0.2]),
        ("models", [0.05, 0.05, 0.2]),
        ("method", [0.0, 0.0, 0.2]),
        ("training", [0.0, 0.05, 0.2]),
        ("performance", [0.0, 0.0, 0.2]),
        ("data", [0.0, 0.0, 0.2]),
        ("image", [0.2, 0.0, 0.2]),
        ("images", [0.2, 0.0, 0.2]),
    ];

    /// Writes a model2vec model folder as minishlab publishes them.
    fn write_model(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
        let mut vocab = BTreeMap::new();
        for (i, token) in specials.iter().chain(WORDS.iter().map(|(w, _)| w)).enumerate() {
            vocab.insert((*token).to_string(), i);
        }
        let added: Vec<serde_json::Value> = specials
            .iter()
            .enumerate()
            .map(|(id, t)| {
                serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let tokenizer = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": vocab},
        });
        std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"model_type": "model2vec", "normalize": true, "hidden_dim": 3}"#,
        )
        .unwrap();
        let mut rows: Vec<f32> = vec![0.0; specials.len() * 3];
        for (_, v) in WORDS {
            rows.extend_from_slice(v);
        }
        let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
        let tensor = TensorView::new(Dtype::F32, vec![specials.len() + WORDS.len(), 3], &bytes).unwrap();
        let file = safetensors::serialize([("embeddings", tensor)], &None).unwrap();
        std::fs::write(dir.join("model.safetensors"), file).unwrap();
    }

    fn site(http: &str, smtp_port: u16) -> Site {
        let site = Site::with_subscribers(http, smtp_port, "embedding_model = \"model\"", VIDEO_READER);
        write_model(&site.path("model"));
        site
    }

    /// "Tracking Meets LoRA" (2411.16524) tracks objects through frames and never says
    /// "video" or "action recognition": found by meaning only.
    const TRACKING: &str = "2411.16524";

    #[test]
    fn a_paper_that_shares_no_keyword_enters_by_meaning_and_explain_names_the_similarity() {
        let http = hf_server();
        let smtp = SmtpServer::start(Faults::none());
        let site = site(&http.url(), smtp.port());
        assert_eq!(code(&site.run(&["fetch"])), 0);
        let with = site.preview_ids("vera@example.org", super::super::support::site::NOW);
        assert!(with.iter().any(|id| id == TRACKING), "{with:?}");

        let out = site.run(&["explain", "--to", "vera@example.org", "--paper", TRACKING]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("ranked #"), "{text}");
        assert!(text.contains("matched similar in meaning (cosine "), "{text}");
        assert!(text.contains("; the topic's median "), "{text}");
        // A paper on language stays out: near nothing the video papers are about.
        let out = site.run(&["explain", "--to", "vera@example.org", "--paper", "2411.16500"]);
        assert!(stdout(&out).contains("left out"), "{}", stdout(&out));

        // Without the model, keywords alone decide and the tracking paper is not in.
        site.edit_config(|c| c.replace("embedding_model = \"model\"", ""));
        let without = site.preview_ids("vera@example.org", super::super::support::site::NOW);
        assert!(!without.iter().any(|id| id == TRACKING), "{without:?}");
        for id in &without {
            assert!(with.contains(id), "the model only adds papers here: {id} {with:?}");
        }
    }

    #[test]
    fn a_broken_model_fails_the_run_naming_the_key_and_the_folder_and_sends_nothing() {
        let http = hf_server();
        let smtp = SmtpServer::start(Faults::none());
        let site = site(&http.url(), smtp.port());
        let weights = site.path("model/model.safetensors");
        let bytes = std::fs::read(&weights).unwrap();
        let out = site.run(&["check"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(
            stdout(&out).contains("embedding model ok: ") && stdout(&out).contains("(3 dimensions"),
            "{}",
            stdout(&out)
        );
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        // `check` finds it before a run would.
        let out = site.run(&["check"]);
        assert_eq!(code(&out), 78, "{}", stderr(&out));
        assert!(stderr(&out).contains("digest.embedding_model"), "{}", stderr(&out));
        let out = site.run(&["run"]);
        assert_eq!(code(&out), 78, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("digest.embedding_model") && err.contains("model"), "{err}");
        assert!(err.contains("safetensors"), "says which file: {err}");
        assert!(smtp.messages().is_empty());
        assert_eq!(site.count("SELECT count(*) FROM deliveries"), 0, "nothing recorded");

        // A folder that is not there is refused before anything runs, and never fetched.
        std::fs::remove_dir_all(site.path("model")).unwrap();
        let out = site.run(&["run"]);
        assert_eq!(code(&out), 78, "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("digest.embedding_model") && err.contains("Nothing is downloaded"), "{err}");
    }
}
