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
        // A template that already covers it.
        for &c in &cands {
            if covers(&self.clusters[c].template, tokens) {
                return c;
            }
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
            self.clusters[c].template = t;
            self.register(c);
            return self.absorb(c);
        }
        let c = self.clusters.len();
        self.clusters.push(Cluster {
            id: c as u64 + 1,
            template: tokens.to_vec(),
            count: 0,
            merged_into: None,
        });
        self.by_len.entry(tokens.len()).or_default().push(c);
        self.register(c);
        self.absorb(c)
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
            let t = generalise(&self.clusters[target].template, &self.clusters[m].template);
            self.clusters[target].template = t;
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
