//! Bottlenecks across traces: folding one trace's critical path into per-operation and
//! per-call-path contributions, ranking operations over a window against a baseline, and
//! CRISP's what-if projection.
//!
//! **Fold.** For a trace with spans `S` and critical path `P` ([`super::critical_path`]), the
//! trace's end-to-end time `E` is its longest root's duration, and an operation
//! `o = (service, span name)` contributes `x(o)`, the length of the sections of that root's
//! path that belong to its spans (0 when off the path: it is then not counted). Other roots
//! (orphans of a broken trace, late fragments) are left out, so the contributions of a trace
//! sum to exactly `E`, because one root's sections tile its interval. A call path is the chain
//! of operations from the root to the span (`frontend: GET / > cart: GET /cart`), so the same
//! operation reached two ways is told apart; it keeps the two operations nearest the root and
//! the last [`MAX_DEPTH`] − 3, eliding the middle of deeper chains, with each name cut to
//! [`MAX_NAME`] bytes. Paths are computed once per span (memoised from the parent), so a
//! million-span chain costs linear time.
//!
//! **Rank.** Over a window with traces `T`, an operation's critical-path time is
//! `C(o) = Σ_T x(o)` and its share `C(o) / Σ_T E`: the fraction of all end-to-end waiting
//! spent in it. Rows are sorted by `C(o)`. Against a baseline window the change is the share's
//! difference (percentage points, robust to traffic changes) and the ratio of the mean
//! per-trace contribution `C(o)/n(o)` ("what got slower").
//!
//! **What-if.** Speeding `o` up by a fraction `f` shortens each trace by at most `f·x(o)`, so
//! the projected total is `Σ E − f·C(o)`. This is CRISP's projection and an upper bound on
//! the gain: when `o` overlaps a sibling, the sibling may become critical sooner.

use std::collections::HashMap;

use super::critical_path::{CriticalPath, SpanInput};
use crate::series::Cell;

/// Longest call path kept, in operations.
pub const MAX_DEPTH: usize = 12;

/// Longest service or operation name in a call path, in bytes.
pub const MAX_NAME: usize = 160;

/// One trace folded: what each operation and call path contributed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFold {
    /// The earliest span start.
    pub start: u64,
    /// The longest root's duration.
    pub duration: u64,
    /// (service, operation) → exclusive critical-path time, nonzero only.
    pub operations: Vec<((String, String), u64)>,
    /// Call path → exclusive critical-path time, nonzero only.
    pub call_paths: Vec<(String, u64)>,
}

/// Folds a trace's critical path. `names[i]` is span `i`'s (service, operation).
pub fn fold<S: AsRef<str>>(
    spans: &[SpanInput],
    names: &[(S, S)],
    path: &CriticalPath,
) -> TraceFold {
    let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let Some(root) = path.roots.first() else {
        return TraceFold {
            start,
            ..TraceFold::default()
        };
    };
    let duration = spans
        .get(root.root)
        .map(|r| r.end.saturating_sub(r.start))
        .unwrap_or(0);
    // Exclusive time on the longest root's path, per span.
    let mut exclusive: HashMap<usize, u64> = HashMap::new();
    for sec in &root.sections {
        if sec.span < spans.len() && sec.span < names.len() {
            *exclusive.entry(sec.span).or_default() += sec.end - sec.start;
        }
    }
    let mut paths = CallPaths::new(spans, names);
    // The path's root heads every chain, even when a parent cycle runs through it (the walk
    // cut the cycle there).
    if root.root < spans.len() {
        paths.memo[root.root] = Some(Chain {
            head: vec![root.root],
            elided: false,
            tail: Vec::new(),
            len: 1,
        });
    }
    let mut ops: HashMap<(&str, &str), u64> = HashMap::new();
    let mut by_path: HashMap<String, u64> = HashMap::new();
    for (&i, &x) in &exclusive {
        let (svc, op) = (names[i].0.as_ref(), names[i].1.as_ref());
        *ops.entry((svc, op)).or_default() += x;
        *by_path.entry(paths.label(i)).or_default() += x;
    }
    let mut operations: Vec<((String, String), u64)> = ops
        .into_iter()
        .map(|((s, o), x)| ((s.to_string(), o.to_string()), x))
        .collect();
    operations.sort();
    let mut call_paths: Vec<(String, u64)> = by_path.into_iter().collect();
    call_paths.sort();
    TraceFold {
        start,
        duration,
        operations,
        call_paths,
    }
}

/// `name` cut to `max` bytes at a char boundary, marked with `…` when cut.
pub fn cut(name: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if name.len() <= max {
        return name.into();
    }
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end]).into()
}

/// A span's call path, short form: the two operations nearest the root, whether some were
/// elided, and the last ones (at most `MAX_DEPTH − 3`, or the whole chain when it fits).
#[derive(Clone)]
struct Chain {
    head: Vec<usize>,
    elided: bool,
    tail: Vec<usize>,
    len: usize,
}

/// Memoised call paths of a trace's spans.
struct CallPaths<'a, S> {
    spans: &'a [SpanInput],
    names: &'a [(S, S)],
    by_id: HashMap<[u8; 8], usize>,
    memo: Vec<Option<Chain>>,
    on_stack: Vec<bool>,
}

impl<'a, S: AsRef<str>> CallPaths<'a, S> {
    fn new(spans: &'a [SpanInput], names: &'a [(S, S)]) -> Self {
        let mut by_id = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            by_id.entry(s.span_id).or_insert(i);
        }
        CallPaths {
            spans,
            names,
            by_id,
            memo: vec![None; spans.len()],
            on_stack: vec![false; spans.len()],
        }
    }

    fn parent(&self, i: usize) -> Option<usize> {
        self.spans[i]
            .parent_id
            .and_then(|p| self.by_id.get(&p).copied())
            .filter(|&p| p != i)
    }

    /// The chain of span `i`, computing its ancestors' first (iteratively; a parent cycle is
    /// cut where it closes).
    fn chain(&mut self, i: usize) -> Chain {
        let mut pending = vec![i];
        self.on_stack[i] = true;
        let mut at = i;
        // Walk up to the first memoised ancestor, the root, or a cycle.
        while self.memo[at].is_none() {
            match self.parent(at) {
                Some(p) if !self.on_stack[p] => {
                    if self.memo[p].is_some() {
                        break;
                    }
                    self.on_stack[p] = true;
                    pending.push(p);
                    at = p;
                }
                _ => break,
            }
        }
        for &j in &pending {
            self.on_stack[j] = false;
        }
        // Build down from the top.
        while let Some(j) = pending.pop() {
            if self.memo[j].is_some() {
                continue;
            }
            // The parent is memoised unless it closes a cycle (then `j` heads the chain).
            let up = self.parent(j).and_then(|p| self.memo[p].clone());
            let c = match up {
                None => Chain {
                    head: vec![j],
                    elided: false,
                    tail: Vec::new(),
                    len: 1,
                },
                Some(mut c) => {
                    if c.head.len() < 2 && !c.elided && c.tail.is_empty() {
                        c.head.push(j);
                    } else {
                        c.tail.push(j);
                        if c.head.len() + c.tail.len() > MAX_DEPTH {
                            c.elided = true;
                        }
                        while c.elided && c.tail.len() > MAX_DEPTH - 3 {
                            c.tail.remove(0);
                        }
                    }
                    c.len += 1;
                    c
                }
            };
            self.memo[j] = Some(c);
        }
        self.memo[i].clone().unwrap_or(Chain {
            head: vec![i],
            elided: false,
            tail: Vec::new(),
            len: 1,
        })
    }

    fn label(&mut self, i: usize) -> String {
        let c = self.chain(i);
        let name = |j: &usize| match self.names.get(*j) {
            Some((svc, op)) => format!(
                "{}: {}",
                cut(svc.as_ref(), MAX_NAME),
                cut(op.as_ref(), MAX_NAME)
            ),
            None => "?".to_string(),
        };
        let mut parts: Vec<String> = c.head.iter().map(name).collect();
        if c.elided {
            parts.push("…".into());
        }
        parts.extend(c.tail.iter().map(name));
        parts.join(CALL_PATH_SEPARATOR)
    }
}

/// Between the steps of a call path label.
const CALL_PATH_SEPARATOR: &str = " > ";

/// The (service, operation) steps of a call path label, from the root down; the `…` of an
/// elided middle is skipped.
pub fn call_path_steps(label: &str) -> impl Iterator<Item = (&str, &str)> {
    label
        .split(CALL_PATH_SEPARATOR)
        .filter_map(|step| step.split_once(": "))
}

/// The last step of a call path label (the operation the time was spent in): (service,
/// operation), or (the step, "") if it does not name both.
pub fn call_path_last(label: &str) -> (&str, &str) {
    let last = label.rsplit(CALL_PATH_SEPARATOR).next().unwrap_or("");
    last.split_once(": ").unwrap_or((last, ""))
}

/// An operation (or call path) ranked over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub labels: Vec<String>,
    pub cell: Cell,
    /// `C(o) / Σ E` over the window.
    pub share: f64,
    /// The same in the baseline window, when it has traces.
    pub baseline_share: Option<f64>,
    /// Mean per-trace contribution now over the baseline's, when the baseline has it.
    pub mean_ratio: Option<f64>,
}

/// Ranks `window` (label set → cell, with `total` the [`crate::series::Family::Trace`] cell of
/// the window) by critical-path time, with the change against `baseline`; the `top_k` first.
pub fn rank(
    window: &HashMap<Vec<String>, Cell>,
    total: &Cell,
    baseline: &HashMap<Vec<String>, Cell>,
    baseline_total: &Cell,
    top_k: usize,
) -> Vec<Row> {
    let share = |c: &Cell, t: &Cell| {
        if t.time == 0 {
            0.0
        } else {
            c.time as f64 / t.time as f64
        }
    };
    let mut rows: Vec<Row> = window
        .iter()
        .map(|(labels, cell)| {
            let base = baseline.get(labels);
            let baseline_share = (baseline_total.count > 0)
                .then(|| base.map(|b| share(b, baseline_total)).unwrap_or(0.0));
            let mean_ratio = base.filter(|b| b.count > 0 && b.time > 0).map(|b| {
                (cell.time as f64 / cell.count.max(1) as f64) / (b.time as f64 / b.count as f64)
            });
            Row {
                labels: labels.clone(),
                cell: cell.clone(),
                share: share(cell, total),
                baseline_share,
                mean_ratio,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cell
            .time
            .cmp(&a.cell.time)
            .then_with(|| a.labels.cmp(&b.labels))
    });
    rows.truncate(top_k);
    rows
}

/// The what-if projection of speeding one operation up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub traces: u64,
    /// Traces with the operation on their critical path.
    pub affected: u64,
    pub total: u64,
    pub projected_total: u64,
    /// `(projected − total) / total` (negative: faster).
    pub change: f64,
}

/// Projects speeding the operation of `op` up by `speedup` (0..=1) over the window whose
/// traces are `total`.
pub fn what_if(op: &Cell, total: &Cell, speedup: f64) -> Projection {
    let saved = (op.time as f64 * speedup.clamp(0.0, 1.0)).round() as u64;
    let projected_total = total.time.saturating_sub(saved.min(total.time));
    Projection {
        traces: total.count,
        affected: op.count,
        total: total.time,
        projected_total,
        change: if total.time == 0 {
            0.0
        } else {
            (projected_total as f64 - total.time as f64) / total.time as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::critical_path::{Kind, critical_path};
    use proptest::prelude::*;

    fn s(id: u8, parent: Option<u8>, start: u64, end: u64) -> SpanInput {
        SpanInput {
            span_id: [id; 8],
            parent_id: parent.map(|p| [p; 8]),
            start,
            end,
            kind: Kind::Other,
        }
    }

    /// frontend GET / [0,100] calls auth [5,15] then, in parallel, catalog [20,60] and
    /// pricing [20,90] (which calls db twice: [30,50] and [55,85]).
    fn shop() -> (Vec<SpanInput>, Vec<(&'static str, &'static str)>) {
        (
            vec![
                s(1, None, 0, 100),
                s(2, Some(1), 5, 15),
                s(3, Some(1), 20, 60),
                s(4, Some(1), 20, 90),
                s(5, Some(4), 30, 50),
                s(6, Some(4), 55, 85),
            ],
            vec![
                ("frontend", "GET /"),
                ("auth", "verify"),
                ("catalog", "GET /item"),
                ("pricing", "GET /price"),
                ("db", "SELECT"),
                ("db", "SELECT"),
            ],
        )
    }

    #[test]
    fn call_path_labels_parse_back() {
        let label = "web: GET / > … > db: SELECT x: y";
        let steps: Vec<(&str, &str)> = call_path_steps(label).collect();
        assert_eq!(steps, [("web", "GET /"), ("db", "SELECT x: y")]);
        assert_eq!(call_path_last(label), ("db", "SELECT x: y"));
        assert_eq!(call_path_last("odd"), ("odd", ""));
    }

    #[test]
    fn a_trace_folds_by_hand() {
        let (spans, names) = shop();
        let cp = critical_path(&spans, 0.0);
        let f = fold(&spans, &names, &cp);
        assert_eq!((f.start, f.duration), (0, 100));
        // frontend: [0,5] [15,20] [90,100] = 20; auth 10; pricing: [20,30] [50,55] [85,90] = 20;
        // db: 20 + 30 = 50 (two spans, one operation); catalog is off the path.
        let ops: Vec<(&str, &str, u64)> = f
            .operations
            .iter()
            .map(|((s, o), x)| (s.as_str(), o.as_str(), *x))
            .collect();
        assert_eq!(
            ops,
            vec![
                ("auth", "verify", 10),
                ("db", "SELECT", 50),
                ("frontend", "GET /", 20),
                ("pricing", "GET /price", 20),
            ]
        );
        assert!(f.call_paths.contains(&(
            "frontend: GET / > pricing: GET /price > db: SELECT".to_string(),
            50
        )));
        assert_eq!(f.call_paths.iter().map(|p| p.1).sum::<u64>(), 100);
    }

    #[test]
    fn deep_and_cyclic_parents_are_bounded() {
        // A chain of 30 spans each inside its parent: the path is elided in the middle.
        let spans: Vec<SpanInput> = (0..30u8)
            .map(|i| {
                s(
                    i + 1,
                    (i > 0).then_some(i),
                    u64::from(i),
                    100 - u64::from(i),
                )
            })
            .collect();
        let names: Vec<(String, String)> = (0..30)
            .map(|i| ("svc".to_string(), format!("op{i}")))
            .collect();
        let f = fold(&spans, &names, &critical_path(&spans, 0.0));
        let deepest = f
            .call_paths
            .iter()
            .find(|(p, _)| p.ends_with("svc: op29"))
            .unwrap();
        assert_eq!(deepest.0.split(" > ").count(), MAX_DEPTH);
        assert!(deepest.0.starts_with("svc: op0 > svc: op1 > … > "));
        // A parent cycle (a → b → a) with no root still folds without looping: the walk cuts
        // the cycle at its earliest span, which heads the path.
        let spans = vec![s(1, Some(2), 0, 10), s(2, Some(1), 2, 8)];
        let names = vec![("a", "x"), ("b", "y")];
        let f = fold(&spans, &names, &critical_path(&spans, 0.0));
        assert_eq!(f.duration, 10);
        assert_eq!(f.operations.iter().map(|o| o.1).sum::<u64>(), 10);
        assert!(
            f.call_paths.contains(&("a: x > b: y".to_string(), 6)),
            "{f:?}"
        );
        // A 100,000-span chain: linear, and the deepest path keeps its root end.
        let n = 100_000u64;
        let spans = crate::traces::critical_path::chain(n);
        let names: Vec<(String, String)> =
            (0..n).map(|i| ("s".to_string(), format!("o{i}"))).collect();
        let f = fold(&spans, &names, &critical_path(&spans, 0.0));
        assert_eq!(f.duration, 2 * n);
        let deepest = f
            .call_paths
            .iter()
            .find(|(p, _)| p.ends_with(&format!("s: o{}", n - 1)))
            .unwrap();
        assert!(
            deepest.0.starts_with("s: o0 > s: o1 > … > "),
            "{}",
            deepest.0
        );
        assert_eq!(deepest.0.split(" > ").count(), MAX_DEPTH);
        // Long names are cut in call paths.
        let long = "x".repeat(1000);
        let spans = vec![s(1, None, 0, 10)];
        let f = fold(
            &spans,
            &[("svc", long.as_str())],
            &critical_path(&spans, 0.0),
        );
        assert_eq!(f.call_paths[0].0, format!("svc: {}…", "x".repeat(MAX_NAME)));
    }

    fn cell(count: u64, time: u64) -> Cell {
        Cell {
            count,
            time,
            ..Cell::default()
        }
    }

    #[test]
    fn ranking_and_change_by_hand() {
        let l = |s: &str| vec![s.to_string()];
        let window: HashMap<Vec<String>, Cell> = [
            (l("db"), cell(10, 600)),
            (l("auth"), cell(10, 200)),
            (l("new"), cell(2, 100)),
        ]
        .into_iter()
        .collect();
        let baseline: HashMap<Vec<String>, Cell> =
            [(l("db"), cell(20, 400)), (l("auth"), cell(20, 400))]
                .into_iter()
                .collect();
        let rows = rank(&window, &cell(10, 1000), &baseline, &cell(20, 2000), 10);
        let names: Vec<&str> = rows.iter().map(|r| r.labels[0].as_str()).collect();
        assert_eq!(names, vec!["db", "auth", "new"]);
        assert!((rows[0].share - 0.6).abs() < 1e-12);
        assert_eq!(rows[0].baseline_share, Some(0.2));
        // db: 60 per trace now, 20 before: 3×.
        assert_eq!(rows[0].mean_ratio, Some(3.0));
        assert_eq!(rows[2].baseline_share, Some(0.0));
        assert_eq!(rows[2].mean_ratio, None);
        // No baseline traces: no baseline share at all.
        let rows = rank(
            &window,
            &cell(10, 1000),
            &HashMap::new(),
            &Cell::default(),
            2,
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].baseline_share, None);
    }

    #[test]
    fn what_if_by_hand() {
        // db holds 600 of 1000 ns of end-to-end time; 30% faster saves 180.
        let p = what_if(&cell(10, 600), &cell(10, 1000), 0.3);
        assert_eq!((p.total, p.projected_total), (1000, 820));
        assert!((p.change + 0.18).abs() < 1e-12);
        assert_eq!(what_if(&cell(1, 10), &Cell::default(), 0.5).change, 0.0);
        assert_eq!(what_if(&cell(1, 10), &cell(1, 10), 7.0).projected_total, 0);
    }

    /// A tree under one root of [0, 1000], with some spans made orphans (a parent id that is
    /// not in the trace) when `orphans`.
    fn arb_tree(orphans: bool) -> impl Strategy<Value = Vec<SpanInput>> {
        prop::collection::vec((0usize..1000, 0u64..100, 1u64..100), 1..40).prop_map(move |v| {
            let mut spans: Vec<SpanInput> = Vec::new();
            for (i, (p, off, len)) in v.into_iter().enumerate() {
                let parent = (i > 0).then(|| p % i);
                let (start, end) = match parent {
                    None => (0, 1000),
                    Some(p) => {
                        let ps = &spans[p];
                        let start = ps.start + off % (ps.end - ps.start).max(1);
                        (start, (start + len).min(ps.end))
                    }
                };
                let mut span = s(i as u8 + 1, parent.map(|p| p as u8 + 1), start, end);
                if orphans && i > 0 && p % 5 == 0 {
                    span.parent_id = Some([200; 8]);
                }
                spans.push(span);
            }
            spans
        })
    }

    proptest! {
        /// The operations' contributions sum to the end-to-end time (the longest root's
        /// duration), and so do the call paths', whatever orphans the trace has.
        #[test]
        fn contributions_tile_the_trace(spans in prop_oneof![arb_tree(false), arb_tree(true)]) {
            let names: Vec<(String, String)> = spans
                .iter()
                .map(|s| (format!("svc{}", s.span_id[0] % 3), format!("op{}", s.span_id[0] % 4)))
                .collect();
            let f = fold(&spans, &names, &critical_path(&spans, 0.0));
            prop_assert_eq!(f.duration, 1000);
            prop_assert_eq!(f.operations.iter().map(|o| o.1).sum::<u64>(), 1000);
            prop_assert_eq!(f.call_paths.iter().map(|o| o.1).sum::<u64>(), 1000);
        }
    }
}
