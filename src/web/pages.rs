//! The web pages and the confirmation mail: minijinja templates compiled in from
//! `templates/web/`, each replaceable by a file of the same name in `{templates}/web/`.

use crate::error::{Error, Result};
use minijinja::{Environment, Value};
use std::path::Path;

const BUILTIN: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/web/base.html")),
    ("style.css", include_str!("../../templates/web/style.css")),
    ("subscribe.html", include_str!("../../templates/web/subscribe.html")),
    ("check_inbox.html", include_str!("../../templates/web/check_inbox.html")),
    ("confirm.html", include_str!("../../templates/web/confirm.html")),
    ("unsubscribe.html", include_str!("../../templates/web/unsubscribe.html")),
    ("manage.html", include_str!("../../templates/web/manage.html")),
    ("vote.html", include_str!("../../templates/web/vote.html")),
    ("message.html", include_str!("../../templates/web/message.html")),
    ("topic.html", include_str!("../../templates/web/topic.html")),
    ("feed.xml", include_str!("../../templates/web/feed.xml")),
    ("confirm_mail.txt", include_str!("../../templates/web/confirm_mail.txt")),
    ("confirm_mail.html", include_str!("../../templates/web/confirm_mail.html")),
];

/// The compiled page templates.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The built-in templates, each replaced by `{dir}/web/NAME` when that file exists.
    pub fn new(dir: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // URLs stay readable: `/` is not escaped (see the digest's formatter).
        env.set_formatter(crate::render::html_formatter);
        for &(name, source) in BUILTIN {
            let custom = dir.map(|d| d.join("web").join(name)).filter(|p| p.is_file());
            match custom {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    env.add_template_owned(name, text)
                        .map_err(|e| render_error(&path.display().to_string(), &e))?;
                }
                None => env.add_template(name, source).map_err(|e| render_error(name, &e))?,
            }
        }
        Ok(Pages { env })
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String> {
        let template = self.env.get_template(name).map_err(|e| render_error(name, &e))?;
        template.render(ctx).map_err(|e| render_error(name, &e))
    }
}

fn render_error(name: &str, e: &minijinja::Error) -> Error {
    let mut message = e.to_string();
    if let Some(detail) = e.detail()
        && !message.contains(detail)
    {
        message = format!("{message}: {detail}");
    }
    Error::Render { name: format!("web/{name}"), message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_built_in_page_compiles_and_escapes_what_it_is_given() {
        let pages = Pages::new(None).unwrap();
        let html = pages
            .render(
                "message.html",
                context! { base => "https://d.example.org", title => "<b>x</b>", text => "a & b" },
            )
            .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && html.contains("a &amp; b"), "{html}");
        assert!(html.contains("href=\"https://d.example.org/style.css\""), "{html}");
        for (name, _) in BUILTIN {
            assert!(pages.env.get_template(name).is_ok(), "{name}");
        }
    }
}
