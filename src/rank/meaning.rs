//! Papers as points in a static embedding's space: one unit vector per candidate, given
//! by the caller (the ranking does no I/O; `crate::meaning` loads a model2vec model and
//! embeds the candidates when the `embeddings` feature is on and a model is configured).
//!
//! A topic reads them only through its best papers of the day: a paper with no word in
//! common with the topic is lifted when it is at least as close in meaning to their
//! centroid as the median one of them is to the others' (see docs/ranking.md, "Similar in
//! meaning").

use super::tuning;

/// One unit vector per candidate, in the candidates' order, all of one dimension.
#[derive(Debug, Clone, Default)]
pub struct Meanings {
    dim: usize,
    /// Row-major, `dim` floats per candidate; a zero row for a paper the model had no
    /// token for.
    rows: Vec<f32>,
}

/// Why vectors cannot be used as [`Meanings`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeaningsError {
    #[error("the model gave vectors of {found} dimensions for paper {paper}, {expected} for the first")]
    Dimensions { paper: usize, expected: usize, found: usize },
    #[error("the model gave a vector that is not finite (NaN or infinite) for paper {paper}")]
    NotFinite { paper: usize },
    #[error("the model gave {found} vectors for {expected} papers")]
    Count { expected: usize, found: usize },
}

/// `v` scaled to unit length (all zeros stay zeros), as `f32`.
fn unit(v: impl Iterator<Item = f64> + Clone) -> Vec<f32> {
    let norm = v.clone().map(|x| x * x).sum::<f64>().sqrt();
    v.map(|x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 }).collect()
}

impl Meanings {
    /// Checks and normalizes one vector per candidate (`expected` of them).
    pub fn new(vectors: Vec<Vec<f32>>, expected: usize) -> Result<Self, MeaningsError> {
        if vectors.len() != expected {
            return Err(MeaningsError::Count { expected, found: vectors.len() });
        }
        let dim = vectors.first().map_or(0, Vec::len);
        let mut rows = Vec::with_capacity(dim * vectors.len());
        for (paper, v) in vectors.into_iter().enumerate() {
            if v.len() != dim {
                return Err(MeaningsError::Dimensions { paper, expected: dim, found: v.len() });
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(MeaningsError::NotFinite { paper });
            }
            rows.extend(unit(v.iter().map(|x| f64::from(*x))));
        }
        // Centre on the day's mean: every abstract of a field shares one direction (mean-
        // pooled static embeddings are anisotropic), which would make any two papers of
        // the field look alike; what is left is what sets a paper apart from the day.
        let n = rows.len().checked_div(dim).unwrap_or(0);
        let mut mean = vec![0.0f64; dim];
        for row in rows.chunks(dim.max(1)) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += f64::from(*x) / n as f64;
            }
        }
        if n > 1 {
            for row in rows.chunks_mut(dim.max(1)) {
                if row.iter().any(|x| *x != 0.0) {
                    let centred = unit(row.iter().zip(&mean).map(|(x, m)| f64::from(*x) - m));
                    row.copy_from_slice(&centred);
                }
            }
        }
        Ok(Meanings { dim, rows })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len().checked_div(self.dim).unwrap_or(0)
    }

    fn row(&self, doc: u32) -> &[f32] {
        let start = doc as usize * self.dim;
        self.rows.get(start..start + self.dim).unwrap_or_default()
    }

    fn dot(&self, centroid: &[f64], doc: u32) -> f64 {
        self.row(doc).iter().zip(centroid).map(|(x, c)| f64::from(*x) * c).sum()
    }
}

/// A topic's best papers of the day in embedding space: their score-weighted centroid
/// (Rocchio again, as [`super::topic`]'s TF-IDF core), and how near its own members are.
#[derive(Debug, Default)]
pub(crate) struct MeaningCore {
    /// Sum of the members' unit vectors times their score shares.
    centroid: Vec<f64>,
    norm2: f64,
    /// (feedback paper, its weight in `centroid`), sorted by paper.
    members: Vec<(u32, f64)>,
    /// The median member's similarity to the others' centroid: the least a paper with no
    /// other evidence must reach.
    pub(crate) typical: f64,
    /// The nearest member's.
    best: f64,
}

impl MeaningCore {
    /// `None` with fewer than [`tuning::FEEDBACK_MIN_DOCS`] feedback papers, or none with
    /// a vector: too little to say what the topic's papers are about.
    pub(crate) fn new(meanings: &Meanings, top: &[(u32, f64)]) -> Option<MeaningCore> {
        let top: Vec<(u32, f64)> = top
            .iter()
            .copied()
            .filter(|&(d, s)| {
                s > 0.0 && (d as usize) < meanings.len() && meanings.row(d).iter().any(|x| *x != 0.0)
            })
            .collect();
        let total: f64 = top.iter().map(|(_, s)| s).sum();
        if top.len() < tuning::FEEDBACK_MIN_DOCS || total <= 0.0 || meanings.dim == 0 {
            return None;
        }
        let mut centroid = vec![0.0; meanings.dim];
        let mut members: Vec<(u32, f64)> = top.iter().map(|&(d, s)| (d, s / total)).collect();
        for &(doc, w) in &members {
            for (c, x) in centroid.iter_mut().zip(meanings.row(doc)) {
                *c += w * f64::from(*x);
            }
        }
        members.sort_unstable_by_key(|(d, _)| *d);
        let norm2 = centroid.iter().map(|c| c * c).sum();
        let mut core = MeaningCore { centroid, norm2, members, typical: 0.0, best: 0.0 };
        let mut own: Vec<f64> = core.members.iter().map(|&(d, _)| core.similarity(meanings, d)).collect();
        own.sort_by(f64::total_cmp);
        core.typical = own[own.len() / 2];
        core.best = own[own.len() - 1];
        Some(core)
    }

    /// Cosine similarity of `doc` to the centroid of the members other than itself.
    pub(crate) fn similarity(&self, meanings: &Meanings, doc: u32) -> f64 {
        cosine_leaving_out(meanings.dot(&self.centroid, doc), self.norm2, &self.members, doc)
    }

    /// What closeness in meaning adds to `doc`'s topic score, in units of the day's
    /// floor: nothing under the median member's similarity, one floor (enough to enter
    /// alone) at it, rising to [`tuning::MEANING_WEIGHT`] floors at the nearest member's.
    pub(crate) fn value(&self, meanings: &Meanings, doc: u32) -> f64 {
        let s = self.similarity(meanings, doc);
        if s < self.typical || s <= 0.0 {
            return 0.0;
        }
        let above =
            if self.best > self.typical { (s - self.typical) / (self.best - self.typical) } else { 1.0 };
        1.0 + (tuning::MEANING_WEIGHT - 1.0) * above.clamp(0.0, 1.0)
    }
}

/// The cosine of a unit vector `v` (of paper `doc`) to a centroid `c` of unit vectors,
/// given `c·v` and `|c|²`, with `doc` left out of `c` when it is one of its `members`
/// (sorted by paper, with their weights): |c - w·v|² = |c|² - 2w(c·v) + w². A paper is
/// never measured against itself. Shared by the TF-IDF core and the meaning core.
pub(crate) fn cosine_leaving_out(mut dot: f64, mut norm2: f64, members: &[(u32, f64)], doc: u32) -> f64 {
    if let Ok(i) = members.binary_search_by_key(&doc, |m| m.0) {
        let w = members[i].1;
        norm2 = norm2 - 2.0 * w * dot + w * w;
        dot -= w;
    }
    if norm2 <= 1e-12 { 0.0 } else { dot / norm2.sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors_of_another_dimension_or_not_finite_or_too_few_are_refused_naming_the_paper() {
        let bad = Meanings::new(vec![vec![1.0, 0.0], vec![1.0]], 2).unwrap_err();
        assert_eq!(bad, MeaningsError::Dimensions { paper: 1, expected: 2, found: 1 });
        assert!(bad.to_string().contains("paper 1"), "{bad}");
        let nan = Meanings::new(vec![vec![1.0, 0.0], vec![f32::NAN, 1.0]], 2).unwrap_err();
        assert_eq!(nan, MeaningsError::NotFinite { paper: 1 });
        let few = Meanings::new(vec![vec![1.0]], 2).unwrap_err();
        assert_eq!(few, MeaningsError::Count { expected: 2, found: 1 });
        assert_eq!(Meanings::new(Vec::new(), 0).map(|m| m.len()), Ok(0));
    }

    /// Three members near one direction, a paper nearer than the median member, one far.
    fn space() -> (Meanings, MeaningCore) {
        let v = |x: f32, y: f32, z: f32| vec![x, y, z];
        let meanings = Meanings::new(
            vec![v(1.0, 0.1, 0.0), v(1.0, 0.3, 0.0), v(1.0, 0.0, 0.4), v(1.0, 0.05, 0.05), v(0.0, 0.0, 1.0)],
            5,
        )
        .unwrap();
        let core = MeaningCore::new(&meanings, &[(0, 3.0), (1, 2.0), (2, 1.0)]).unwrap();
        (meanings, core)
    }

    #[test]
    fn a_paper_as_close_as_the_typical_best_paper_gains_at_least_one_floor_a_far_one_nothing() {
        let (meanings, core) = space();
        let near = core.value(&meanings, 3);
        assert!((1.0..=tuning::MEANING_WEIGHT).contains(&near), "{near}");
        assert!(core.value(&meanings, 4) <= 0.0);
        // A member is measured against the others, never against itself.
        assert!(core.similarity(&meanings, 0) < 1.0 - 1e-9);
    }

    #[test]
    fn too_few_best_papers_give_no_core() {
        let (meanings, _) = space();
        assert!(MeaningCore::new(&meanings, &[(0, 1.0), (1, 1.0)]).is_none());
        // A paper the model had no token for is not a member.
        let blank = Meanings::new(vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]], 3).unwrap();
        assert!(MeaningCore::new(&blank, &[(0, 1.0), (1, 1.0), (2, 1.0)]).is_none());
    }

    proptest! {
        #[test]
        fn any_vectors_from_a_model_are_accepted_as_unit_rows_or_refused_naming_the_paper(
            rows in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(f32::NAN), Just(f32::INFINITY), -1e6f32..1e6], 0..5),
                0..8,
            ),
        ) {
            let n = rows.len();
            let dim = rows.first().map_or(0, Vec::len);
            let first_bad = rows.iter().position(|r| r.len() != dim || r.iter().any(|x| !x.is_finite()));
            match Meanings::new(rows, n) {
                Ok(m) => {
                    prop_assert!(first_bad.is_none());
                    for doc in 0..n as u32 {
                        let norm: f64 = m.row(doc).iter().map(|x| f64::from(*x).powi(2)).sum();
                        prop_assert!(norm < 1e-9 || (norm - 1.0).abs() < 1e-3, "{norm}");
                    }
                }
                Err(MeaningsError::Dimensions { paper, .. } | MeaningsError::NotFinite { paper }) => {
                    prop_assert_eq!(Some(paper), first_bad);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn any_finite_vectors_give_similarities_in_range_and_values_within_the_weight(
            rows in proptest::collection::vec(proptest::collection::vec(-1.0f32..1.0, 4), 3..12),
        ) {
            let n = rows.len();
            let meanings = Meanings::new(rows, n).unwrap();
            let top: Vec<(u32, f64)> = (0..3).map(|d| (d, 1.0 + f64::from(d))).collect();
            if let Some(core) = MeaningCore::new(&meanings, &top) {
                for doc in 0..n as u32 {
                    let s = core.similarity(&meanings, doc);
                    prop_assert!(s.is_finite() && (-1.0 - 1e-6..=1.0 + 1e-6).contains(&s), "{s}");
                    let v = core.value(&meanings, doc);
                    prop_assert!(v <= 0.0 || (1.0..=tuning::MEANING_WEIGHT + 1e-9).contains(&v), "{v}");
                }
            }
        }
    }
}
