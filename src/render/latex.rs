//! LaTeX in titles and abstracts made readable: `$\alpha$` becomes α, `E$^{2}$GAN`
//! becomes E²GAN, `{\it word}` becomes word. Commands it does not know stay as plain text,
//! without the dollar signs around them.
//!
//! Abstracts are written for arXiv, not for a TeX engine: unbalanced `$`, `\alpha` outside
//! math and `$5` prices all occur, so the rules below lean towards leaving text alone.

use crate::source::text::{subscript, superscript};
use unicode_normalization::UnicodeNormalization;

/// `s` with LaTeX markup turned into Unicode text.
pub fn to_unicode(s: &str) -> String {
    if !s.contains(['\\', '$', '{', '`', '~']) && !s.contains("--") {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let dollars = classify_dollars(&chars);
    let mut p = Parser { chars, dollars, pos: 0, math: false, quote_open: false, depth: 0 };
    let out = p.until_close();
    out.nfc().collect()
}

/// What a `$` at some position does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dollar {
    /// Opens or closes math.
    Toggle,
    /// Part of a `$$` delimiter whose first `$` toggles.
    Skip,
    /// A price (`$5`): printed.
    Literal,
    /// A stray delimiter without partner: dropped.
    Drop,
}

/// Pairs the dollar signs of `chars`. `$...$` is math only when its content is non-empty
/// and neither starts nor ends with a space, as real inline math does; so in
/// "costs $5 and $10" no math is found.
fn classify_dollars(chars: &[char]) -> Vec<Option<Dollar>> {
    let mut kinds = vec![None; chars.len()];
    let unescaped = |i: usize| chars[i] == '$' && (i == 0 || chars[i - 1] != '\\');
    let mut i = 0;
    while i < chars.len() {
        if !unescaped(i) {
            i += 1;
            continue;
        }
        let double = i + 1 < chars.len() && chars[i + 1] == '$';
        let open = if double { i + 2 } else { i + 1 };
        let close = (open..chars.len()).find(|&j| unescaped(j));
        let paired = close.filter(|&j| {
            let inner = &chars[open..j];
            let closes_double = !double || chars.get(j + 1) == Some(&'$');
            closes_double
                && !inner.is_empty()
                && !inner[0].is_whitespace()
                && !inner[inner.len() - 1].is_whitespace()
        });
        if let Some(j) = paired {
            kinds[i] = Some(Dollar::Toggle);
            kinds[j] = Some(Dollar::Toggle);
            if double {
                kinds[i + 1] = Some(Dollar::Skip);
                kinds[j + 1] = Some(Dollar::Skip);
                i = j + 2;
            } else {
                i = j + 1;
            }
        } else {
            let price = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            kinds[i] = Some(if price { Dollar::Literal } else { Dollar::Drop });
            i += 1;
        }
    }
    kinds
}

struct Parser {
    chars: Vec<char>,
    dollars: Vec<Option<Dollar>>,
    pos: usize,
    math: bool,
    /// Whether a ``` `` ``` opened a quotation that `''` closes.
    quote_open: bool,
    /// How many groups and commands enclose the current position: the parser recurses
    /// into them, so nesting beyond [`MAX_DEPTH`] is copied as text instead.
    depth: usize,
}

/// Real abstracts nest braces a handful of levels; 20,000 `{` in a row would overflow
/// the stack. Past this depth the rest of the input is kept as written.
const MAX_DEPTH: usize = 64;

/// The longest `[...]` optional argument read as one.
const MAX_OPTIONAL_CHARS: usize = 64;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Converts up to the `}` that closes the current group (consumed) or the end.
    fn until_close(&mut self) -> String {
        if self.depth >= MAX_DEPTH {
            return self.verbatim_group();
        }
        self.depth += 1;
        let out = self.group_body();
        self.depth -= 1;
        out
    }

    /// The rest of the current group as written, up to its closing `}` (consumed), without
    /// recursing however deep it nests.
    fn verbatim_group(&mut self) -> String {
        let mut out = String::new();
        let mut open = 0usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '{' => open += 1,
                '}' if open == 0 => return out,
                '}' => open -= 1,
                _ => {}
            }
            out.push(c);
        }
        out
    }

    fn group_body(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            match c {
                '}' => {
                    self.pos += 1;
                    return out;
                }
                '{' => {
                    self.pos += 1;
                    self.group(&mut out);
                }
                '\\' => self.command(&mut out),
                '$' => {
                    self.pos += 1;
                    match self.dollars[self.pos - 1] {
                        Some(Dollar::Toggle) => self.math = !self.math,
                        Some(Dollar::Literal) => out.push('$'),
                        Some(Dollar::Skip | Dollar::Drop) | None => {}
                    }
                }
                '^' | '_' if self.math => {
                    self.pos += 1;
                    let arg = self.argument();
                    out.push_str(&script(c, &arg));
                }
                '~' => {
                    self.pos += 1;
                    // A tie ("Fig.~3") is a space; a leading "~10%" means "about".
                    let tie = self.math
                        || out.chars().last().is_some_and(|p| !p.is_whitespace())
                            && self.peek().is_some_and(|n| !n.is_whitespace());
                    out.push(if tie { ' ' } else { '~' });
                }
                '`' if !self.math && self.peek_at(1) == Some('`') => {
                    self.pos += 2;
                    self.quote_open = true;
                    out.push('“');
                }
                '\'' if !self.math && self.quote_open && self.peek_at(1) == Some('\'') => {
                    self.pos += 2;
                    self.quote_open = false;
                    out.push('”');
                }
                '\'' if self.math => {
                    self.pos += 1;
                    out.push('′');
                }
                '-' if !self.math && self.peek_at(1) == Some('-') => self.dash(&mut out),
                _ => {
                    self.pos += 1;
                    out.push(c);
                }
            }
        }
        out
    }

    /// After a `{`: math groups and `{\it ...}` groups vanish; other braces are text.
    fn group(&mut self, out: &mut String) {
        let declaration = self.peek() == Some('\\');
        let inner = self.until_close();
        if self.math || declaration {
            out.push_str(&inner);
        } else if inner.starts_with("http") && out.ends_with(&inner) {
            // Hugging Face renders a link as "url{url}": keep one copy.
        } else {
            out.push('{');
            out.push_str(&inner);
            out.push('}');
        }
    }

    /// `--` between digits or spaces is a dash (`10--20`, `a --- b`); `--flag` stays.
    fn dash(&mut self, out: &mut String) {
        let triple = self.peek_at(2) == Some('-');
        let len = if triple { 3 } else { 2 };
        let before = out.chars().last();
        let after = self.peek_at(len);
        let digits = before.is_some_and(|c| c.is_ascii_digit()) && after.is_some_and(|c| c.is_ascii_digit());
        let spaced = before.is_none_or(char::is_whitespace) && after.is_none_or(char::is_whitespace);
        if digits || spaced || triple && before.is_some_and(char::is_alphanumeric) {
            out.push(if triple { '—' } else { '–' });
        } else {
            out.extend(std::iter::repeat_n('-', len));
        }
        self.pos += len;
    }

    /// One argument: a `{group}`, a command, or a single character.
    fn argument(&mut self) -> String {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.until_close()
            }
            Some('\\') => {
                let mut out = String::new();
                self.command(&mut out);
                out
            }
            Some(c) => {
                self.pos += 1;
                c.to_string()
            }
            None => String::new(),
        }
    }

    /// An optional `[...]` argument, raw.
    fn optional(&mut self) -> Option<String> {
        if self.peek() != Some('[') {
            return None;
        }
        // Optional arguments are a few characters (`[3]`); looking further for a `]` would
        // make many unclosed `\sqrt[` quadratic.
        let end = self.chars[self.pos..].iter().take(MAX_OPTIONAL_CHARS).position(|&c| c == ']')?;
        let arg: String = self.chars[self.pos + 1..self.pos + end].iter().collect();
        self.pos += end + 1;
        Some(arg)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    /// At a `\`: reads the command name and writes what it stands for.
    fn command(&mut self, out: &mut String) {
        self.pos += 1;
        if self.depth >= MAX_DEPTH {
            out.push('\\');
            return;
        }
        self.depth += 1;
        self.command_body(out);
        self.depth -= 1;
    }

    fn command_body(&mut self, out: &mut String) {
        let Some(first) = self.peek() else {
            out.push('\\');
            return;
        };
        let name: String = if first.is_ascii_alphabetic() {
            let len = self.chars[self.pos..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
            self.chars[self.pos..self.pos + len].iter().collect()
        } else {
            first.to_string()
        };
        self.pos += name.chars().count();
        let name = name.as_str();

        if let Some(s) = symbol(name) {
            out.push_str(s);
        } else if let Some(mark) = accent(name) {
            let arg = self.argument();
            let mut chars = arg.chars();
            match (chars.next(), chars.next(), mark) {
                (Some(c), None, _) => {
                    out.push(c);
                    out.push(mark);
                }
                // An overline covers every character under it.
                (Some(_), Some(_), '\u{0305}') => {
                    for c in arg.chars() {
                        out.push(c);
                        out.push(mark);
                    }
                }
                _ => out.push_str(&arg),
            }
        } else if let Some(font) = Font::of(name) {
            let arg = self.argument();
            out.extend(arg.chars().map(|c| font.apply(c)));
        } else if is_declaration(name) {
            // `\it`, `\left`, `\displaystyle`: formatting with nothing to show.
            self.skip_spaces();
        } else if takes_one_argument(name) {
            let arg = self.argument();
            out.push_str(&arg);
        } else {
            self.structure(name, out);
        }
    }

    /// Commands with arguments that need arranging.
    fn structure(&mut self, name: &str, out: &mut String) {
        match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let num = self.argument();
                let den = self.argument();
                out.push_str(&operand(&num));
                out.push('/');
                out.push_str(&operand(&den));
            }
            "sqrt" => {
                let root = match self.optional().as_deref().map(str::trim) {
                    Some("3") => '∛',
                    Some("4") => '∜',
                    _ => '√',
                };
                let arg = self.argument();
                out.push(root);
                out.push_str(&operand(&arg));
            }
            "textsuperscript" => {
                let arg = self.argument();
                out.push_str(&script('^', &arg));
            }
            "textsubscript" => {
                let arg = self.argument();
                out.push_str(&script('_', &arg));
            }
            "href" => {
                let url = self.argument();
                let text = self.argument();
                out.push_str(&text);
                out.push_str(" (");
                out.push_str(&url);
                out.push(')');
            }
            "textcolor" | "colorbox" => {
                self.argument();
                let arg = self.argument();
                out.push_str(&arg);
            }
            "color" | "label" | "cite" | "citep" | "citet" | "ref" | "eqref" | "vspace" | "hspace"
            | "phantom" => {
                self.optional();
                self.argument();
            }
            _ => {
                // Unknown: keep it readable as it was written, minus the math delimiters.
                out.push('\\');
                out.push_str(name);
                while self.peek() == Some('{') {
                    self.pos += 1;
                    let arg = self.until_close();
                    out.push('{');
                    out.push_str(&arg);
                    out.push('}');
                }
            }
        }
    }
}

/// Wraps an operand of `/` or `√` in parentheses unless it is one simple token.
fn operand(s: &str) -> String {
    let s = s.trim();
    if s.chars().all(|c| c.is_alphanumeric() || c == '.') || s.chars().count() == 1 {
        s.to_string()
    } else {
        format!("({s})")
    }
}

/// A `^` or `_` argument: as Unicode scripts when every character has one, else `^x`
/// or `^(xy)`.
fn script(kind: char, arg: &str) -> String {
    let arg = arg.trim();
    let mapped = if kind == '^' { superscript(arg) } else { subscript(arg) };
    match mapped {
        Some(m) if !m.is_empty() => m,
        _ if arg.chars().count() <= 1 => format!("{kind}{arg}"),
        _ => format!("{kind}({arg})"),
    }
}

/// Text and math symbols: Greek, operators, relations, arrows, escapes, spacing.
#[allow(clippy::too_many_lines)] // one flat table reads best
fn symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        // Greek.
        "alpha" => "α",
        "beta" => "β",
        "gamma" => "γ",
        "delta" => "δ",
        "epsilon" | "varepsilon" => "ε",
        "zeta" => "ζ",
        "eta" => "η",
        "theta" => "θ",
        "vartheta" => "ϑ",
        "iota" => "ι",
        "kappa" => "κ",
        "lambda" => "λ",
        "mu" => "μ",
        "nu" => "ν",
        "xi" => "ξ",
        "omicron" => "ο",
        "pi" => "π",
        "varpi" => "ϖ",
        "rho" => "ρ",
        "varrho" => "ϱ",
        "sigma" => "σ",
        "varsigma" => "ς",
        "tau" => "τ",
        "upsilon" => "υ",
        "phi" | "varphi" => "φ",
        "chi" => "χ",
        "psi" => "ψ",
        "omega" => "ω",
        "Gamma" => "Γ",
        "Delta" => "Δ",
        "Theta" => "Θ",
        "Lambda" => "Λ",
        "Xi" => "Ξ",
        "Pi" => "Π",
        "Sigma" => "Σ",
        "Upsilon" => "Υ",
        "Phi" => "Φ",
        "Psi" => "Ψ",
        "Omega" => "Ω",
        // Binary operators and relations.
        "times" => "×",
        "cdot" => "·",
        "div" => "÷",
        "pm" => "±",
        "mp" => "∓",
        "ast" => "∗",
        "star" => "⋆",
        "circ" => "∘",
        "bullet" | "textbullet" => "•",
        "oplus" => "⊕",
        "otimes" => "⊗",
        "odot" => "⊙",
        "cup" => "∪",
        "cap" => "∩",
        "wedge" | "land" => "∧",
        "vee" | "lor" => "∨",
        "setminus" => "∖",
        "leq" | "le" => "≤",
        "geq" | "ge" => "≥",
        "neq" | "ne" => "≠",
        "ll" => "≪",
        "gg" => "≫",
        "approx" => "≈",
        "sim" => "∼",
        "simeq" => "≃",
        "cong" => "≅",
        "equiv" => "≡",
        "propto" => "∝",
        "in" => "∈",
        "notin" => "∉",
        "ni" => "∋",
        "subset" => "⊂",
        "subseteq" => "⊆",
        "supset" => "⊃",
        "supseteq" => "⊇",
        "mid" => "∣",
        "parallel" => "∥",
        "perp" | "bot" => "⊥",
        "top" => "⊤",
        "vdash" => "⊢",
        "models" => "⊨",
        // Big operators and other math.
        "sum" => "∑",
        "prod" => "∏",
        "int" => "∫",
        "oint" => "∮",
        "infty" => "∞",
        "partial" => "∂",
        "nabla" => "∇",
        "forall" => "∀",
        "exists" => "∃",
        "neg" | "lnot" => "¬",
        "emptyset" | "varnothing" => "∅",
        "ell" => "ℓ",
        "hbar" => "ℏ",
        "Re" => "ℜ",
        "Im" => "ℑ",
        "aleph" => "ℵ",
        "angle" => "∠",
        "triangle" => "△",
        "prime" => "′",
        "dagger" => "†",
        "ddagger" => "‡",
        "checkmark" => "✓",
        "surd" => "√",
        "degree" => "°",
        "langle" => "⟨",
        "rangle" => "⟩",
        "lceil" => "⌈",
        "rceil" => "⌉",
        "lfloor" => "⌊",
        "rfloor" => "⌋",
        "vert" | "lvert" | "rvert" => "|",
        "Vert" | "lVert" | "rVert" | "|" => "‖",
        "colon" => ":",
        "ldots" | "dots" | "dotsc" | "dotso" => "…",
        "cdots" | "dotsb" => "⋯",
        "vdots" => "⋮",
        "ddots" => "⋱",
        // Arrows.
        "rightarrow" | "to" => "→",
        "leftarrow" | "gets" => "←",
        "leftrightarrow" => "↔",
        "Rightarrow" => "⇒",
        "Leftarrow" => "⇐",
        "Leftrightarrow" => "⇔",
        "longrightarrow" => "⟶",
        "longleftarrow" => "⟵",
        "implies" | "Longrightarrow" => "⟹",
        "iff" | "Longleftrightarrow" => "⟺",
        "mapsto" => "↦",
        "uparrow" => "↑",
        "downarrow" => "↓",
        "hookrightarrow" => "↪",
        "rightleftharpoons" => "⇌",
        // Function names, printed upright.
        "log" => "log",
        "ln" => "ln",
        "exp" => "exp",
        "sin" => "sin",
        "cos" => "cos",
        "tan" => "tan",
        "max" => "max",
        "min" => "min",
        "arg" => "arg",
        "argmax" => "argmax",
        "argmin" => "argmin",
        "lim" => "lim",
        "sup" => "sup",
        "inf" => "inf",
        "det" => "det",
        "dim" => "dim",
        "Pr" => "Pr",
        // Escapes and text symbols.
        "%" => "%",
        "&" => "&",
        "_" => "_",
        "#" => "#",
        "$" => "$",
        "{" => "{",
        "}" => "}",
        "textbackslash" => "\\",
        "textasciitilde" => "~",
        "S" => "§",
        "P" => "¶",
        "copyright" => "©",
        "textregistered" => "®",
        "texttrademark" => "™",
        "textendash" => "–",
        "textemdash" => "—",
        "euro" => "€",
        "pounds" => "£",
        "ss" => "ß",
        "o" => "ø",
        "O" => "Ø",
        "ae" => "æ",
        "AE" => "Æ",
        "oe" => "œ",
        "OE" => "Œ",
        "aa" => "å",
        "AA" => "Å",
        "l" => "ł",
        "L" => "Ł",
        "i" => "ı",
        "LaTeX" => "LaTeX",
        "TeX" => "TeX",
        // Spacing.
        "," | ";" | ":" | " " | "quad" | "qquad" | "\\" | "newline" | "enspace" => " ",
        "!" | "/" | "-" => "",
        _ => return None,
    })
}

/// Accent commands and the combining character each stands for.
fn accent(name: &str) -> Option<char> {
    Some(match name {
        "'" | "acute" => '\u{0301}',
        "`" | "grave" => '\u{0300}',
        "^" | "hat" | "widehat" => '\u{0302}',
        "~" | "tilde" | "widetilde" => '\u{0303}',
        "=" | "bar" => '\u{0304}',
        "overline" => '\u{0305}',
        "u" | "breve" => '\u{0306}',
        "." | "dot" => '\u{0307}',
        "\"" | "ddot" => '\u{0308}',
        "r" => '\u{030A}',
        "H" => '\u{030B}',
        "v" | "check" => '\u{030C}',
        "c" => '\u{0327}',
        "k" => '\u{0328}',
        "vec" => '\u{20D7}',
        _ => return None,
    })
}

/// Formatting switches that have no visible counterpart in plain text.
fn is_declaration(name: &str) -> bool {
    matches!(
        name,
        "it" | "bf"
            | "rm"
            | "sf"
            | "tt"
            | "sc"
            | "sl"
            | "em"
            | "itshape"
            | "bfseries"
            | "upshape"
            | "normalfont"
            | "mdseries"
            | "small"
            | "footnotesize"
            | "scriptsize"
            | "tiny"
            | "large"
            | "Large"
            | "huge"
            | "normalsize"
            | "left"
            | "right"
            | "middle"
            | "big"
            | "Big"
            | "bigg"
            | "Bigg"
            | "bigl"
            | "bigr"
            | "Bigl"
            | "Bigr"
            | "displaystyle"
            | "textstyle"
            | "scriptstyle"
            | "limits"
            | "nolimits"
            | "nonumber"
            | "noindent"
            | "centering"
            | "xspace"
            | "relax"
            | "mathstrut"
    )
}

/// Commands whose one argument is shown as it is.
fn takes_one_argument(name: &str) -> bool {
    matches!(
        name,
        "text"
            | "textrm"
            | "textbf"
            | "textit"
            | "textsf"
            | "texttt"
            | "textsc"
            | "textup"
            | "textsl"
            | "textnormal"
            | "emph"
            | "mathrm"
            | "mathbf"
            | "mathit"
            | "mathsf"
            | "mathtt"
            | "mathnormal"
            | "boldsymbol"
            | "bm"
            | "operatorname"
            | "mbox"
            | "hbox"
            | "underline"
            | "ensuremath"
            | "mathop"
            | "mathbin"
            | "mathrel"
            | "boxed"
            | "url"
            | "footnote"
    )
}

/// Math alphabets with their own Unicode letters.
#[derive(Debug, Clone, Copy)]
enum Font {
    /// `\mathbb`: ℝ, ℕ, 𝔸.
    DoubleStruck,
    /// `\mathcal`, `\mathscr`: 𝒳, ℒ.
    Script,
    /// `\mathfrak`: 𝔄, ℜ.
    Fraktur,
}

impl Font {
    fn of(name: &str) -> Option<Font> {
        match name {
            "mathbb" => Some(Font::DoubleStruck),
            "mathcal" | "mathscr" => Some(Font::Script),
            "mathfrak" => Some(Font::Fraktur),
            _ => None,
        }
    }

    /// `c` in this alphabet. Some letters sit in the older Letterlike Symbols block, where
    /// the Mathematical Alphanumeric block leaves a hole.
    fn apply(self, c: char) -> char {
        let hole = match (self, c) {
            (Font::DoubleStruck, 'C') => Some('ℂ'),
            (Font::DoubleStruck, 'H') => Some('ℍ'),
            (Font::DoubleStruck, 'N') => Some('ℕ'),
            (Font::DoubleStruck, 'P') => Some('ℙ'),
            (Font::DoubleStruck, 'Q') => Some('ℚ'),
            (Font::DoubleStruck, 'R') => Some('ℝ'),
            (Font::DoubleStruck, 'Z') => Some('ℤ'),
            (Font::Script, 'B') => Some('ℬ'),
            (Font::Script, 'E') => Some('ℰ'),
            (Font::Script, 'F') => Some('ℱ'),
            (Font::Script, 'H') => Some('ℋ'),
            (Font::Script, 'I') => Some('ℐ'),
            (Font::Script, 'L') => Some('ℒ'),
            (Font::Script, 'M') => Some('ℳ'),
            (Font::Script, 'R') => Some('ℛ'),
            (Font::Script, 'e') => Some('ℯ'),
            (Font::Script, 'g') => Some('ℊ'),
            (Font::Script, 'o') => Some('ℴ'),
            (Font::Fraktur, 'C') => Some('ℭ'),
            (Font::Fraktur, 'H') => Some('ℌ'),
            (Font::Fraktur, 'I') => Some('ℑ'),
            (Font::Fraktur, 'R') => Some('ℜ'),
            (Font::Fraktur, 'Z') => Some('ℨ'),
            _ => None,
        };
        if let Some(h) = hole {
            return h;
        }
        let (upper, lower) = match self {
            Font::DoubleStruck => (0x1D538, 0x1D552),
            Font::Script => (0x1D49C, 0x1D4B6),
            Font::Fraktur => (0x1D504, 0x1D51E),
        };
        let code = match c {
            'A'..='Z' => upper + (u32::from(c) - u32::from('A')),
            'a'..='z' => lower + (u32::from(c) - u32::from('a')),
            '0'..='9' if matches!(self, Font::DoubleStruck) => 0x1D7D8 + (u32::from(c) - u32::from('0')),
            _ => return c,
        };
        char::from_u32(code).unwrap_or(c)
    }
}

#[cfg(test)]
mod tests {
    use super::to_unicode;

    #[test]
    fn twenty_thousand_nested_braces_do_not_overflow_the_stack() {
        let open = "{".repeat(20_000);
        let input = format!("a {open}x{} b", "}".repeat(20_000));
        let out = to_unicode(&input);
        assert!(out.starts_with("a {") && out.contains('x') && out.ends_with("} b"), "{}", &out[..40]);
        assert!(out.chars().count() <= input.chars().count());
        let out = to_unicode(&format!("${}x$", "\\hat".repeat(20_000)));
        assert!(out.chars().count() <= 100_003);
        let out = to_unicode(&"\\frac{".repeat(20_000));
        assert!(out.chars().count() <= 120_000);
    }

    #[test]
    fn greek_letters_in_math_become_unicode() {
        assert_eq!(to_unicode("PixArt-$\\alpha$: Fast Training"), "PixArt-α: Fast Training");
        assert_eq!(to_unicode("$\\Omega$ and $\\beta_1$"), "Ω and β₁");
    }

    #[test]
    fn superscripts_and_subscripts_use_unicode_when_they_can() {
        assert_eq!(to_unicode("E$^{2}$GAN"), "E²GAN");
        assert_eq!(to_unicode("$x^2 + y_{i}$"), "x² + yᵢ");
        assert_eq!(to_unicode("$W^{-1}$, $A^\\top$, $90^\\circ$"), "W⁻¹, Aᵀ, 90°");
        assert_eq!(to_unicode("$L_{\\mathrm{max}}$"), "Lₘₐₓ");
        // No subscript comma: spelled out instead.
        assert_eq!(to_unicode("$a_{i,j}$ and $b^{q}$"), "a_(i,j) and b^q");
    }

    #[test]
    fn common_commands_map_to_symbols() {
        assert_eq!(to_unicode("$3 \\times 3$"), "3 × 3");
        assert_eq!(to_unicode("$n \\leq 10$, $a \\rightarrow b$, $\\sim$5"), "n ≤ 10, a → b, ∼5");
        assert_eq!(to_unicode("$\\mathcal{X}$ in $\\mathbb{R}^d$"), "𝒳 in ℝᵈ");
        assert_eq!(to_unicode("\\textbf{x} and \\emph{y}"), "x and y");
        assert_eq!(to_unicode("up to 1.79\\% better"), "up to 1.79% better");
        assert_eq!(to_unicode("$\\frac{1}{2}$, $\\frac{a+b}{c}$, $\\sqrt{d}$"), "1/2, (a+b)/c, √d");
        assert_eq!(to_unicode("$\\hat{x}$ and Erd\\H{o}s, G\\\"odel"), "x̂ and Erdős, Gödel");
    }

    #[test]
    fn declarations_in_groups_vanish() {
        assert_eq!(to_unicode("(1) {\\it determinism}: almost"), "(1) determinism: almost");
        assert_eq!(to_unicode("on {\\emph compression} of"), "on compression of");
        assert_eq!(to_unicode("density {\\sigma}, decomposed"), "density σ, decomposed");
    }

    #[test]
    fn unknown_commands_stay_as_text_without_dollars() {
        assert_eq!(to_unicode("units (\\aus) from"), "units (\\aus) from");
        assert_eq!(to_unicode("$\\foo{x}$ here"), "\\foo{x} here");
    }

    #[test]
    fn stray_and_price_dollars_are_handled() {
        // One unpaired delimiter, as in a real abstract: dropped.
        assert_eq!(to_unicode("PIXART-\\alpha$ will provide"), "PIXART-α will provide");
        assert_eq!(to_unicode("costs $5 and $10 a month"), "costs $5 and $10 a month");
        assert_eq!(to_unicode("saving \\$300"), "saving $300");
        assert_eq!(to_unicode("$$E = mc^2$$"), "E = mc²");
    }

    #[test]
    fn text_mode_punctuation_is_typeset() {
        assert_eq!(to_unicode("``quoted'' and Fig.~3, ~10%"), "“quoted” and Fig. 3, ~10%");
        assert_eq!(to_unicode("pages 10--20, a --- b, --flag"), "pages 10–20, a — b, --flag");
    }

    #[test]
    fn plain_text_and_markup_pass_through() {
        assert_eq!(to_unicode("<script>alert(1)</script>"), "<script>alert(1)</script>");
        assert_eq!(to_unicode("snake_case and x^2 outside math"), "snake_case and x^2 outside math");
        assert_eq!(to_unicode("sets {0,1} stay"), "sets {0,1} stay");
        assert_eq!(
            to_unicode("at https://mathcritique.github.io/{https://mathcritique.github.io/}."),
            "at https://mathcritique.github.io/."
        );
    }
}
