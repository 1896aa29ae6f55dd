//! The online clusterer: masked token sequences into template clusters. The algorithm,
//! its steps and invariants are described in [`super`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::mask::{Masker, VAR};

/// Clusterer settings (one default for every kind of log).
#[derive(Debug, Clone)]
pub struct Params {
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
            distinct: 4,
            context: 3,
            // The server's default per service (`analysis.logs.max_clusters`).
            max_clusters: 2000,
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
    /// Template changes so far: a signature cached against an older template is checked
    /// again before it is trusted.
    edits: u64,
}

impl Cluster {
    pub fn template_text(&self) -> String {
        self.template.join(" ")
    }
}

/// Templates equal but at one position: the words seen there (up to `distinct`) and the
/// clusters.
#[derive(Debug, Default)]
struct Slot {
    words: Vec<String>,
    clusters: Vec<usize>,
}

/// Signatures remembered at most (a cache of 64-bit hashes: a forgotten one is placed
/// again).
const MAX_SIGNATURES: usize = 100_000;

/// Templates a word is indexed for at most.
const MAX_POSTINGS: usize = 256;

/// The overflow cluster's template.
pub const OVERFLOW: &str = "<overflow>";

/// The clusterer.
#[derive(Debug)]
pub struct Clusterer {
    params: Params,
    masker: Masker,
    pub clusters: Vec<Cluster>,
    /// Masked token sequence → (cluster index, its `edits` when the sequence last matched
    /// its template).
    exact: HashMap<u64, (usize, u64)>,
    /// Token count → live cluster indices.
    by_len: HashMap<usize, Vec<usize>>,
    /// Hash of (a template with one position wildcarded, the position) → what differs.
    slots: HashMap<u64, Slot>,
    /// Live clusters, and the overflow cluster once the bound is reached.
    live: usize,
    overflow: Option<usize>,
    /// Word → clusters whose template has it (may hold merged ones; resolved on use).
    words: HashMap<String, Vec<usize>>,
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
            live: 0,
            overflow: None,
            words: HashMap::new(),
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

    /// Assigns one message to a cluster; returns the live cluster's index.
    pub fn add(&mut self, message: &str) -> usize {
        let mut tokens = std::mem::take(&mut self.tokens);
        self.masker.mask(message, &mut tokens);
        let sig = signature(&tokens);
        let cached = self.exact.get(&sig).copied().map(|(i, edits)| {
            let r = self.resolve(i);
            (r, r == i && self.clusters[r].edits == edits)
        });
        let i = match cached {
            // The template is the one this signature matched: the common case, one probe.
            Some((r, true)) => r,
            // It changed since (a merge, or a run of values aligned into it): it may no
            // longer match, as when a later alignment took the words this line had.
            Some((r, false)) if self.matches(r, &tokens) => {
                self.exact.insert(sig, (r, self.clusters[r].edits));
                r
            }
            _ => {
                let i = self.place(&tokens);
                let mut r = self.resolve(i);
                if !self.matches(r, &tokens) {
                    // Placing it reshaped its cluster (merges after an alignment) so that
                    // the template no longer takes it: it starts a cluster of its own.
                    r = self.start(&tokens);
                }
                if self.exact.len() >= MAX_SIGNATURES {
                    self.exact.clear();
                }
                self.exact.insert(sig, (r, self.clusters[r].edits));
                r
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
        if self.at_bound() {
            return self.overflow_cluster();
        }
        let c = self.start(tokens);
        self.register(c);
        self.absorb(c)
    }

    /// Are `max_clusters` live (the overflow cluster not counted)?
    fn at_bound(&self) -> bool {
        self.live - usize::from(self.overflow.is_some()) >= self.params.max_clusters
    }

    /// A new cluster whose template is `tokens` (or the overflow cluster at the bound).
    fn start(&mut self, tokens: &[String]) -> usize {
        if self.at_bound() {
            return self.overflow_cluster();
        }
        let c = self.push(tokens.to_vec());
        self.by_len.entry(tokens.len()).or_default().push(c);
        self.index(c);
        c
    }

    /// Restores a cluster from its template (state reloaded at start): it takes the lines
    /// its template covers or aligns with, as before the restart. Returns its index.
    pub fn seed(&mut self, template: Vec<String>, generalised: bool, overflow: bool) -> usize {
        if overflow {
            return self.overflow_cluster();
        }
        let c = self.push(template);
        self.clusters[c].generalised = generalised;
        let len = self.clusters[c].template.len();
        self.by_len.entry(len).or_default().push(c);
        self.index(c);
        // Lines whose signature is the template itself find it at once.
        let edits = self.clusters[c].edits;
        self.exact
            .insert(signature(&self.clusters[c].template), (c, edits));
        c
    }

    fn push(&mut self, template: Vec<String>) -> usize {
        let c = self.clusters.len();
        self.clusters.push(Cluster {
            id: c as u64 + 1,
            template,
            count: 0,
            merged_into: None,
            generalised: false,
            edits: 0,
        });
        self.live += 1;
        c
    }

    /// The cluster lines join once `max_clusters` are live (counted, visible, never
    /// matched by a template).
    fn overflow_cluster(&mut self) -> usize {
        match self.overflow {
            Some(o) => o,
            None => {
                let o = self.push(vec![OVERFLOW.to_string()]);
                self.overflow = Some(o);
                o
            }
        }
    }

    /// Live clusters (the overflow cluster included once it exists).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Is this the overflow cluster?
    pub fn is_overflow(&self, c: usize) -> bool {
        self.overflow == Some(c)
    }

    /// Does the template of cluster `c` match these masked tokens: position by position
    /// (`<*>` matching anything), or aligned with runs of values?
    pub fn matches(&self, c: usize, tokens: &[String]) -> bool {
        let t = &self.clusters[self.resolve(c)].template;
        Some(c) == self.overflow || covers(t, tokens) || align(t, tokens).is_some()
    }

    /// The masked tokens of a message, as the clusterer sees them.
    pub fn mask(&self, message: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.masker.mask(message, &mut out);
        out
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
        self.clusters[c].edits += 1;
        self.index(c);
    }

    fn index(&mut self, c: usize) {
        for t in &self.clusters[c].template {
            if t != VAR {
                let v = self.words.entry(t.clone()).or_default();
                // A word in that many templates does not narrow the candidates: it stops
                // being indexed (and is skipped when looking up).
                if v.len() < MAX_POSTINGS && !v.contains(&c) {
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
            let posting = self.words.get(t).map(Vec::as_slice).unwrap_or(&[]);
            if posting.len() >= MAX_POSTINGS {
                continue;
            }
            for &c in posting {
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
    /// once it has seen `distinct` words; a merged template is registered in turn.
    fn register(&mut self, c: usize) {
        let mut todo = vec![c];
        'next: while let Some(c) = todo.pop() {
            let c = self.resolve(c);
            let template = self.clusters[c].template.clone();
            // A word is only judged against enough context that stays the same.
            if constants(&template) < self.params.context + 1 {
                continue;
            }
            for k in 0..template.len() {
                if template[k] == VAR {
                    continue;
                }
                let key = slot_key(&template, k);
                let slot = self.slots.entry(key).or_default();
                if slot.words.len() < self.params.distinct && !slot.words.contains(&template[k]) {
                    slot.words.push(template[k].clone());
                }
                if !slot.clusters.contains(&c) {
                    slot.clusters.push(c);
                }
                if slot.words.len() >= self.params.distinct && slot.clusters.len() > 1 {
                    let mut members = std::mem::take(&mut slot.clusters);
                    // Members whose template changed since they joined may no longer fit.
                    members.retain(|&m| {
                        let t = &self.clusters[self.resolve(m)].template;
                        t.len() == template.len()
                            && t.iter()
                                .zip(&template)
                                .enumerate()
                                .all(|(j, (x, y))| j == k || x == y)
                    });
                    let target = self.merge(&members);
                    let target = self.absorb(target);
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.clusters = vec![target];
                    }
                    todo.push(target);
                    continue 'next;
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
                // A member whose template changed shape since it joined the slot stays
                // apart unless the two still align: a template must match its lines.
                match align(a, b) {
                    Some((_, _, t)) => t,
                    None => continue,
                }
            };
            self.set_template(target, t);
            self.clusters[target].count += self.clusters[m].count;
            self.clusters[m].count = 0;
            self.clusters[m].merged_into = Some(target);
            self.live -= 1;
            let len = self.clusters[m].template.len();
            if let Some(v) = self.by_len.get_mut(&len) {
                v.retain(|x| *x != m);
            }
        }
        target
    }
}

/// The slot of position `k` of a template: a hash of the template with `k` wildcarded.
fn slot_key(template: &[String], k: usize) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    k.hash(&mut h);
    for (i, t) in template.iter().enumerate() {
        if i == k { VAR } else { t.as_str() }.hash(&mut h);
    }
    h.finish()
}

/// A 64-bit hash of a token sequence (the signature cache's key).
fn signature(tokens: &[String]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tokens.hash(&mut h);
    h.finish()
}

fn constants(template: &[String]) -> usize {
    template.iter().filter(|t| *t != VAR).count()
}

/// Aligns two token sequences on their longest common subsequence. They align when every
/// token between common tokens holds a value (`<*>`), on both sides: the sequences differ
/// only in how many values, and of what shape, stand in each place. Returns the common
/// tokens, the common words (tokens other than `<*>`) and the merged template: the common
/// tokens with one `<*>` for each run.
pub fn align(a: &[String], b: &[String]) -> Option<(usize, usize, Vec<String>)> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: LCS length of a[i..], b[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
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
    template.len() == tokens.len() && template.iter().zip(tokens).all(|(t, x)| t == VAR || t == x)
}

/// `a` with `<*>` wherever `b` differs.
fn generalise(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { x.clone() } else { VAR.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clusterer() -> Clusterer {
        Clusterer::new(Params::default(), Masker::default())
    }

    /// The template text of each line's final cluster.
    fn run(lines: &[&str]) -> (Clusterer, Vec<String>) {
        let mut c = clusterer();
        let ids: Vec<usize> = lines.iter().map(|l| c.add(l)).collect();
        let t = ids
            .iter()
            .map(|i| c.clusters[c.resolve(*i)].template_text())
            .collect();
        (c, t)
    }

    #[test]
    fn many_words_at_one_place_make_a_variable_two_do_not() {
        let mut lines = Vec::new();
        for u in ["cyrus", "news", "test", "root", "cyrus"] {
            lines.push(format!("session closed for user {u} now"));
        }
        lines.push("cupsd startup succeeded on host".into());
        lines.push("cupsd shutdown succeeded on host".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let (c, t) = run(&refs);
        assert!(
            t[..5]
                .iter()
                .all(|x| x == "session closed for user <*> now"),
            "{t:?}"
        );
        assert_eq!(t[5], "cupsd startup succeeded on host");
        assert_eq!(t[6], "cupsd shutdown succeeded on host");
        assert_eq!(c.live(), 3);
    }

    #[test]
    fn runs_of_values_align_across_lengths() {
        let (_, t) = run(&[
            "a.example.com:443 close, 100 bytes sent, 200 bytes received, lifetime 00:01",
            "a.example.com:443 close, 100 bytes (1.2 KB) sent, 200 bytes received, lifetime <1 sec",
            "Received block blk_1 of size 5 from 10.0.0.1",
            "Received block blk_2 src: /10.0.0.1:5 dest: /10.0.0.2:6 of size 7",
        ]);
        assert_eq!(t[0], t[1]);
        // Words between the values keep these apart.
        assert_ne!(t[2], t[3]);
    }

    #[test]
    fn a_wildcard_learnt_elsewhere_covers_new_words() {
        let (c, t) = run(&[
            "Invalid user u-42 from 1.2.3.4 port 22",
            "Invalid user webmaster from 1.2.3.4 port 22",
        ]);
        assert_eq!(t[0], t[1]);
        assert_eq!(c.live(), 1);
    }

    #[test]
    fn odd_messages_get_a_cluster_too() {
        let long = "x ".repeat(10_000);
        let binary = String::from_utf8_lossy(&[0xff, 0x00, 0xfe, b' ', 0x80]).into_owned();
        let (c, t) = run(&["", "   ", &long, &binary, "\u{0}\u{1}"]);
        assert_eq!(t[0], "");
        assert_eq!(t[1], "", "whitespace only is the empty template");
        assert!(
            t[2].ends_with(super::super::mask::REST),
            "{}",
            &t[2][t[2].len() - 20..]
        );
        assert_eq!(c.clusters.iter().map(|c| c.count).sum::<u64>(), 5);
    }

    #[test]
    fn the_cluster_bound_sends_the_rest_to_overflow() {
        let mut c = Clusterer::new(
            Params {
                max_clusters: 3,
                ..Params::default()
            },
            Masker::default(),
        );
        let ids: Vec<usize> = ["a", "b", "c", "d", "e", "a"]
            .iter()
            .map(|w| c.add(&format!("{w}{w} only")))
            .collect();
        assert_eq!(c.live(), 4, "three clusters and the overflow one");
        assert_eq!(c.clusters[ids[3]].template_text(), OVERFLOW);
        assert_eq!(ids[3], ids[4]);
        assert_eq!(ids[5], ids[0], "known signatures keep their cluster");
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["open", "close", "user", "block", "from", "size", "ok"])
                .prop_map(String::from),
            (0u32..5000).prop_map(|n| n.to_string()),
            prop::sample::select(vec!["cyrus", "news", "test", "root", "guest", "admin"])
                .prop_map(String::from),
            "[a-z(),=:]{1,6}",
        ]
    }

    /// Lines from a few templates with values and names drawn from small sets, so slots
    /// fill, clusters merge and templates align.
    fn templated_line() -> impl Strategy<Value = String> {
        let user = prop::sample::select(vec!["cyrus", "news", "test", "root", "guest", "ftp"]);
        let state = prop::sample::select(vec!["startup", "shutdown"]);
        (0usize..5, user, state, 0u32..100_000, 0usize..4).prop_map(|(t, u, s, n, extra)| match t {
            0 => format!("session opened for user {u} by (uid={n})"),
            1 => format!("cupsd {s} succeeded on host {u}"),
            2 => format!(
                "close, {n} bytes{} sent, lifetime {n}",
                " (1 KB)".repeat(extra)
            ),
            3 => format!(
                "failed to resolve name{}",
                format!(" a{n}").repeat(extra + 1)
            ),
            _ => format!("{u} {s} {n}"),
        })
    }

    proptest! {
        /// Lines of a few templates: one live cluster per line, matching it, counts adding up.
        #[test]
        fn merges_keep_every_line_matched(lines in prop::collection::vec(templated_line(), 1..200)) {
            let mut c = clusterer();
            let ids: Vec<usize> = lines.iter().map(|l| c.add(l)).collect();
            for (line, id) in lines.iter().zip(&ids) {
                let live = c.resolve(*id);
                let tokens = c.mask(line);
                prop_assert!(c.matches(live, &tokens), "{:?} not matched by {:?}", tokens, c.clusters[live].template);
            }
            prop_assert_eq!(c.clusters.iter().map(|c| c.count).sum::<u64>(), lines.len() as u64);
            // Two alternatives never merge: startup and shutdown lines stay apart.
            for (a, ia) in lines.iter().zip(&ids) {
                for (b, ib) in lines.iter().zip(&ids) {
                    if a.starts_with("cupsd startup") && b.starts_with("cupsd shutdown") {
                        prop_assert_ne!(c.resolve(*ia), c.resolve(*ib));
                    }
                }
            }
        }

        /// Every line lands in exactly one live cluster, whose template matches the line;
        /// counts add up.
        #[test]
        fn every_line_has_one_cluster_that_matches_it(
            lines in prop::collection::vec(prop::collection::vec(word(), 0..8), 1..80)
        ) {
            let mut c = clusterer();
            let lines: Vec<String> = lines.iter().map(|w| w.join(" ")).collect();
            let ids: Vec<usize> = lines.iter().map(|l| c.add(l)).collect();
            for (line, id) in lines.iter().zip(&ids) {
                let live = c.resolve(*id);
                prop_assert!(c.clusters[live].merged_into.is_none());
                let tokens = c.mask(line);
                prop_assert!(c.matches(live, &tokens), "{:?} not matched by {:?}", tokens, c.clusters[live].template);
            }
            let total: u64 = c.clusters.iter().map(|c| c.count).sum();
            prop_assert_eq!(total, lines.len() as u64);
            let live = c.clusters.iter().filter(|c| c.merged_into.is_none()).count();
            prop_assert_eq!(live, c.live());
        }
    }
}
