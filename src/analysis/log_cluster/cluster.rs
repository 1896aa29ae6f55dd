//! Online template clustering of masked log messages.
//!
//! Draft: the algorithm is documented in `mod.rs` once settled.

use std::collections::HashMap;

use super::mask::{Masker, VAR};

/// Clusterer settings (one default for every kind of log).
#[derive(Debug, Clone)]
pub struct Params {
    /// Least TF-IDF-weighted similarity for a line to join a cluster it does not match.
    pub similarity: f64,
    /// Distinct words seen at one position of otherwise equal templates that make that
    /// position a variable.
    pub distinct: usize,
    /// Words that must stay the same around a position judged by `distinct`.
    pub context: usize,
    /// Clusters at most; past it lines join the overflow cluster.
    pub max_clusters: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            similarity: 0.9,
            distinct: 4,
            context: 2,
            max_clusters: 10_000,
        }
    }
}

/// One cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: u64,
    /// Masked tokens; `<*>` where members differ.
    pub template: Vec<String>,
    pub count: u64,
    /// Merged into this cluster (by index).
    pub merged_into: Option<usize>,
    /// Its `<*>`s include positions learnt from members that differed there.
    pub generalised: bool,
}

impl Cluster {
    pub fn template_text(&self) -> String {
        self.template.join(" ")
    }
}

/// Templates equal but at one position: the words seen there and the clusters.
#[derive(Debug, Default)]
struct Slot {
    words: Vec<String>,
    clusters: Vec<usize>,
}

/// The clusterer.
#[derive(Debug)]
pub struct Clusterer {
    params: Params,
    masker: Masker,
    pub clusters: Vec<Cluster>,
    /// Masked token sequence → cluster index.
    exact: HashMap<Vec<String>, usize>,
    /// Token count → live cluster indices.
    by_len: HashMap<usize, Vec<usize>>,
    /// A template with one position wildcarded → what differs there.
    slots: HashMap<(Vec<String>, usize), Slot>,
    /// Word → clusters whose template has it (may hold merged ones; resolved on use).
    words: HashMap<String, Vec<usize>>,
    /// Lines each token occurs in.
    df: HashMap<String, u64>,
    lines: u64,
    tokens: Vec<String>,
}

impl Clusterer {
    pub fn new(params: Params, masker: Masker) -> Clusterer {
        Clusterer {
            params,
            masker,
            clusters: Vec::new(),
            exact: HashMap::new(),
            by_len: HashMap::new(),
            slots: HashMap::new(),
            words: HashMap::new(),
            df: HashMap::new(),
            lines: 0,
            tokens: Vec::new(),
        }
    }

    /// The live cluster a (possibly merged) cluster index stands for.
    pub fn resolve(&self, mut i: usize) -> usize {
        while let Some(j) = self.clusters[i].merged_into {
            i = j;
        }
        i
    }

    fn idf(&self, t: &str) -> f64 {
        let df = self.df.get(t).copied().unwrap_or(0) as f64;
        ((self.lines as f64 + 1.0) / (df + 1.0)).ln() + 1.0
    }

    /// Assigns one message to a cluster; returns the live cluster's index.
    pub fn add(&mut self, message: &str) -> usize {
        let mut tokens = std::mem::take(&mut self.tokens);
        self.masker.mask(message, &mut tokens);
        self.lines += 1;
        let mut seen: Vec<&str> = Vec::with_capacity(tokens.len());
        for t in &tokens {
            if t != VAR && !seen.contains(&t.as_str()) {
                seen.push(t);
                *self.df.entry(t.clone()).or_default() += 1;
            }
        }
        let i = match self.exact.get(&tokens) {
            Some(&i) => self.resolve(i),
            None => {
                let i = self.place(&tokens);
                self.exact.insert(tokens.clone(), i);
                self.resolve(i)
            }
        };
        self.clusters[i].count += 1;
        self.tokens = tokens;
        i
    }

    /// Finds or makes the cluster of a signature seen for the first time.
    fn place(&mut self, tokens: &[String]) -> usize {
        let cands = self.by_len.get(&tokens.len()).cloned().unwrap_or_default();
        // A template that already covers it, if its `<*>`s say something: it has enough
        // words around them, or they were learnt from members that differed.
        for &c in &cands {
            let cl = &self.clusters[c];
            if (cl.generalised || constants(&cl.template) >= self.params.context)
                && covers(&cl.template, tokens)
            {
                return c;
            }
        }
        // A template of any length that aligns with it, differing only by runs that hold
        // values.
        if let Some((c, merged)) = self.best_alignment(tokens) {
            self.set_template(c, merged);
            self.register(c);
            return self.absorb(c);
        }
        // The most similar template, if similar enough.
        let mut best: Option<(usize, f64)> = None;
        for &c in &cands {
            let s = self.similarity(&self.clusters[c].template, tokens);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((c, s));
            }
        }
        if let Some((c, s)) = best
            && s >= self.params.similarity
        {
            let t = generalise(&self.clusters[c].template, tokens);
            self.set_template(c, t);
            self.register(c);
            return self.absorb(c);
        }
        let c = self.clusters.len();
        self.clusters.push(Cluster {
            id: c as u64 + 1,
            template: tokens.to_vec(),
            count: 0,
            merged_into: None,
            generalised: false,
        });
        self.by_len.entry(tokens.len()).or_default().push(c);
        self.index(c);
        self.register(c);
        self.absorb(c)
    }

    /// Replaces a cluster's template (learnt `<*>`s), keeping the indexes right.
    fn set_template(&mut self, c: usize, t: Vec<String>) {
        let old = self.clusters[c].template.len();
        if t.len() != old {
            if let Some(v) = self.by_len.get_mut(&old) {
                v.retain(|x| *x != c);
            }
            self.by_len.entry(t.len()).or_default().push(c);
        }
        self.clusters[c].template = t;
        self.clusters[c].generalised = true;
        self.index(c);
    }

    fn index(&mut self, c: usize) {
        for t in &self.clusters[c].template {
            if t != VAR {
                let v = self.words.entry(t.clone()).or_default();
                if !v.contains(&c) {
                    v.push(c);
                }
            }
        }
    }

    /// The live cluster whose template aligns best with `tokens` (most words in common, at
    /// least half of the longer one and `context` of them), and the merged template.
    fn best_alignment(&self, tokens: &[String]) -> Option<(usize, Vec<String>)> {
        let mut hits: HashMap<usize, usize> = HashMap::new();
        let mut seen: Vec<&str> = Vec::new();
        for t in tokens {
            if t == VAR || seen.contains(&t.as_str()) {
                continue;
            }
            seen.push(t);
            for &c in self.words.get(t).map(Vec::as_slice).unwrap_or(&[]) {
                if self.clusters[c].merged_into.is_none() {
                    *hits.entry(c).or_default() += 1;
                }
            }
        }
        let need = self.params.context.max(seen.len() / 2);
        let mut cands: Vec<(usize, usize)> = hits.into_iter().filter(|(_, h)| *h >= need).collect();
        cands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut best: Option<(usize, usize, Vec<String>)> = None;
        for (c, _) in cands.into_iter().take(16) {
            let t = &self.clusters[c].template;
            if let Some((m, words, merged)) = align(t, tokens)
                && words >= self.params.context
                && best.as_ref().is_none_or(|b| m > b.1)
            {
                best = Some((c, m, merged));
            }
        }
        best.map(|(c, _, t)| (c, t))
    }

    /// Merges into cluster `c` every live cluster of the same length whose template it
    /// covers (it has `<*>` where they have a word): that position varies.
    fn absorb(&mut self, c: usize) -> usize {
        let c = self.resolve(c);
        let template = &self.clusters[c].template;
        if template.iter().filter(|t| *t != VAR).count() < self.params.context {
            return c;
        }
        let covered: Vec<usize> = self
            .by_len
            .get(&template.len())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&o| o != c && covers(template, &self.clusters[o].template))
                    .collect()
            })
            .unwrap_or_default();
        if covered.is_empty() {
            return c;
        }
        let mut members = covered;
        members.push(c);
        self.merge(&members)
    }

    /// Records the words of cluster `c`'s template in its slots, merging a slot's clusters
    /// once it has seen `distinct` words.
    fn register(&mut self, c: usize) {
        let template = self.clusters[c].template.clone();
        let constants = template.iter().filter(|t| *t != VAR).count();
        // A word is only judged against enough context that stays the same.
        if constants < self.params.context + 1 {
            return;
        }
        for k in 0..template.len() {
            if template[k] == VAR {
                continue;
            }
            let mut key = template.clone();
            key[k] = VAR.to_string();
            let slot = self.slots.entry((key, k)).or_default();
            if !slot.words.contains(&template[k]) {
                slot.words.push(template[k].clone());
            }
            if !slot.clusters.contains(&c) {
                slot.clusters.push(c);
            }
            if slot.words.len() >= self.params.distinct {
                let members = slot.clusters.clone();
                let target = self.merge(&members);
                let target = self.absorb(target);
                // The merged template may close other slots: register it again.
                if target != c || self.clusters[target].template != template {
                    self.register(target);
                    return;
                }
            }
        }
    }

    /// Merges live clusters into the oldest; returns it.
    fn merge(&mut self, members: &[usize]) -> usize {
        let mut live: Vec<usize> = members.iter().map(|m| self.resolve(*m)).collect();
        live.sort_unstable();
        live.dedup();
        let target = live[0];
        for &m in &live[1..] {
            let (a, b) = (&self.clusters[target].template, &self.clusters[m].template);
            let t = if a.len() == b.len() {
                generalise(a, b)
            } else {
                align(a, b).map(|(_, _, t)| t).unwrap_or_else(|| a.clone())
            };
            self.set_template(target, t);
            self.clusters[target].count += self.clusters[m].count;
            self.clusters[m].count = 0;
            self.clusters[m].merged_into = Some(target);
            let len = self.clusters[m].template.len();
            if let Some(v) = self.by_len.get_mut(&len) {
                v.retain(|x| *x != m);
            }
        }
        target
    }

    fn similarity(&self, template: &[String], tokens: &[String]) -> f64 {
        let (mut same, mut all) = (0.0, 0.0);
        for (t, x) in template.iter().zip(tokens) {
            if t == VAR && x == VAR {
                continue;
            }
            let w = if t == VAR {
                self.idf(x)
            } else {
                self.idf(t).max(self.idf(x))
            };
            all += w;
            if t == x || t == VAR {
                same += w;
            }
        }
        if all == 0.0 { 1.0 } else { same / all }
    }
}

fn constants(template: &[String]) -> usize {
    template.iter().filter(|t| *t != VAR).count()
}

/// Aligns two token sequences on their longest common subsequence. They align when every
/// token between common tokens holds a value (`<*>`), on both sides: the sequences differ
/// only in how many values, and of what shape, stand in each place. Returns the common tokens, the common words (tokens other than
/// `<*>`) and the merged template: the common tokens with one `<*>` for each run.
pub fn align(a: &[String], b: &[String]) -> Option<(usize, usize, Vec<String>)> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: LCS length of a[i..], b[j..].
    let mut lcs = vec![0u16; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i] == b[j] {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let all_vars = |run: &[String]| run.iter().all(|t| t.contains(VAR));
    let (mut i, mut j) = (0, 0);
    let (mut gi, mut gj) = (0, 0);
    let mut out = Vec::with_capacity(n.max(m));
    let (mut common, mut words) = (0, 0);
    let close_gap = |gi: usize, i: usize, gj: usize, j: usize, out: &mut Vec<String>| {
        let (ra, rb) = (&a[gi..i], &b[gj..j]);
        if ra.is_empty() && rb.is_empty() {
            return true;
        }
        if !all_vars(ra) || !all_vars(rb) {
            return false;
        }
        if out.last().is_none_or(|l: &String| l != VAR) {
            out.push(VAR.to_string());
        }
        true
    };
    while i < n && j < m {
        if a[i] == b[j] {
            if !close_gap(gi, i, gj, j, &mut out) {
                return None;
            }
            common += 1;
            if a[i] != VAR {
                words += 1;
            }
            if !(a[i] == VAR && out.last().is_some_and(|l| l == VAR)) {
                out.push(a[i].clone());
            }
            i += 1;
            j += 1;
            gi = i;
            gj = j;
        } else if lcs[at(i + 1, j)] >= lcs[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    if !close_gap(gi, n, gj, m, &mut out) {
        return None;
    }
    Some((common, words, out))
}

/// Does `template` (with `<*>` wildcards) cover `tokens` of the same length?
fn covers(template: &[String], tokens: &[String]) -> bool {
    template.len() == tokens.len()
        && template
            .iter()
            .zip(tokens)
            .all(|(t, x)| t == VAR || t == x)
}

/// `a` with `<*>` wherever `b` differs.
fn generalise(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { x.clone() } else { VAR.to_string() })
        .collect()
}
