//! A procedurally generated knowledge base of fictional, multi-hop facts
//! (people, cities, countries, companies) rendered as encyclopedia-style
//! documents, multi-hop questions with gold answers and gold documents, and an
//! in-process Okapi BM25 index (k1 = 0.9, b = 0.4, Lucene idf, ties by doc id).
//! Names come from a syllable grammar, so no model can answer from memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::seed::rng;

/// One document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Doc {
    /// Doc id (index in the corpus).
    pub id: usize,
    /// Title (the entity name).
    pub title: String,
    /// Body text.
    pub text: String,
}

/// A question with its answer, gold docs and the queries of a minimal plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Question text.
    pub text: String,
    /// Gold answer.
    pub answer: String,
    /// Gold doc ids (the reasoning chain).
    pub gold_docs: Vec<usize>,
    /// One query per hop (searching each retrieves the next gold doc).
    pub plan: Vec<String>,
    /// Number of hops.
    pub hops: usize,
}

/// A generated world.
#[derive(Debug, Clone, PartialEq)]
pub struct Kb {
    /// Documents.
    pub docs: Vec<Doc>,
    /// Questions answerable from the documents.
    pub questions: Vec<Question>,
}

const ONSETS: [&str; 16] = [
    "b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th",
];
const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ae"];
const CODAS: [&str; 8] = ["", "", "n", "r", "l", "s", "m", "x"];
const PROFESSIONS: [&str; 6] = [
    "painter",
    "engineer",
    "chemist",
    "poet",
    "architect",
    "merchant",
];

fn syllable(r: &mut ChaCha8Rng) -> String {
    format!(
        "{}{}{}",
        ONSETS[r.random_range(0..ONSETS.len())],
        VOWELS[r.random_range(0..VOWELS.len())],
        CODAS[r.random_range(0..CODAS.len())]
    )
}

fn word(r: &mut ChaCha8Rng, syl: usize) -> String {
    let s: String = (0..syl).map(|_| syllable(r)).collect();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

struct Names {
    used: BTreeSet<String>,
}

impl Names {
    fn fresh(&mut self, r: &mut ChaCha8Rng, make: impl Fn(&mut ChaCha8Rng) -> String) -> String {
        loop {
            let n = make(r);
            if self.used.insert(n.to_lowercase()) {
                return n;
            }
        }
    }
}

/// Size knobs of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbSize {
    /// Countries.
    pub countries: usize,
    /// Cities.
    pub cities: usize,
    /// People.
    pub people: usize,
    /// Companies.
    pub companies: usize,
}

impl Default for KbSize {
    fn default() -> Self {
        KbSize {
            countries: 4,
            cities: 10,
            people: 16,
            companies: 10,
        }
    }
}

impl Kb {
    /// Generates a world and its questions from a seed.
    pub fn generate(seed: u64, size: KbSize) -> Kb {
        let mut r = rng(seed);
        let mut names = Names {
            used: BTreeSet::new(),
        };
        let countries: Vec<String> = (0..size.countries.max(1))
            .map(|_| names.fresh(&mut r, |r| word(r, 2) + "ia"))
            .collect();
        let cities: Vec<(String, usize)> = (0..size.cities.max(1))
            .map(|i| (names.fresh(&mut r, |r| word(r, 2)), i % countries.len()))
            .collect();
        // Share surnames to create look-alike people (BM25 distractors).
        let surnames: Vec<String> = (0..(size.people / 2).max(1))
            .map(|_| names.fresh(&mut r, |r| word(r, 2)))
            .collect();
        let people: Vec<(String, usize, u32, &str)> = (0..size.people.max(1))
            .map(|i| {
                let sur = surnames[i % surnames.len()].clone();
                let n = names.fresh(&mut r, |r| format!("{} {}", word(r, 1), sur));
                (
                    n,
                    r.random_range(0..cities.len()),
                    r.random_range(1820..1990),
                    PROFESSIONS[r.random_range(0..PROFESSIONS.len())],
                )
            })
            .collect();
        let companies: Vec<(String, usize, usize, u32)> = (0..size.companies.max(2))
            .map(|_| {
                let n = names.fresh(&mut r, |r| {
                    format!(
                        "{} {}",
                        word(r, 2),
                        ["Works", "Tools", "Press", "Foods", "Lines"][r.random_range(0..5)]
                    )
                });
                let founder = r.random_range(0..people.len());
                let year = people[founder].2 + r.random_range(20..50);
                (n, founder, r.random_range(0..cities.len()), year)
            })
            .collect();
        let mut docs = Vec::new();
        let mut id_of: HashMap<String, usize> = HashMap::new();
        let mut add = |title: String, text: String, docs: &mut Vec<Doc>| {
            let id = docs.len();
            id_of.insert(title.clone(), id);
            docs.push(Doc { id, title, text });
            id
        };
        for (ci, c) in countries.iter().enumerate() {
            let capital = cities
                .iter()
                .find(|(_, k)| *k == ci)
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            let members: Vec<&str> = cities
                .iter()
                .filter(|(_, k)| *k == ci)
                .map(|(n, _)| n.as_str())
                .collect();
            add(
                c.clone(),
                format!(
                    "{c} is a country. Its capital is {capital}. Cities of {c} include {}.",
                    members.join(", ")
                ),
                &mut docs,
            );
        }
        for (n, k) in &cities {
            let variant = r.random_range(0..2);
            let text = if variant == 0 {
                format!(
                    "{n} is a city in {}. It is known for its markets and bridges.",
                    countries[*k]
                )
            } else {
                format!(
                    "{n} is a town located in the country of {}. Its old quarter dates back centuries.",
                    countries[*k]
                )
            };
            add(n.clone(), text, &mut docs);
        }
        for (n, city, year, prof) in &people {
            add(
                n.clone(),
                format!(
                    "{n} was a {prof} born in {} in {year}. {n} spent most of their life in {}.",
                    cities[*city].0, countries[cities[*city].1]
                ),
                &mut docs,
            );
        }
        for (n, founder, city, year) in &companies {
            add(
                n.clone(),
                format!(
                    "{n} is a company founded by {} in {year}. Its headquarters are in {}.",
                    people[*founder].0, cities[*city].0
                ),
                &mut docs,
            );
        }
        let doc = |t: &str| id_of.get(t).copied().unwrap_or(0);
        let mut questions = Vec::new();
        for (n, founder, city, _) in &companies {
            let (pn, pcity, _, _) = &people[*founder];
            let (cn, ck) = &cities[*pcity];
            questions.push(Question {
                text: format!("Who founded {n}?"),
                answer: pn.clone(),
                gold_docs: vec![doc(n)],
                plan: vec![n.clone()],
                hops: 1,
            });
            questions.push(Question {
                text: format!("In which city was the founder of {n} born?"),
                answer: cn.clone(),
                gold_docs: vec![doc(n), doc(pn)],
                plan: vec![n.clone(), pn.clone()],
                hops: 2,
            });
            questions.push(Question {
                text: format!("In which country is the city where the founder of {n} was born?"),
                answer: countries[*ck].clone(),
                gold_docs: vec![doc(n), doc(pn), doc(cn)],
                plan: vec![n.clone(), pn.clone(), cn.clone()],
                hops: 3,
            });
            let (hc, hk) = &cities[*city];
            questions.push(Question {
                text: format!("In which country does {n} have its headquarters?"),
                answer: countries[*hk].clone(),
                gold_docs: vec![doc(n), doc(hc)],
                plan: vec![n.clone(), hc.clone()],
                hops: 2,
            });
        }
        for w in companies.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if a.3 != b.3 {
                let earlier = if a.3 < b.3 { &a.0 } else { &b.0 };
                questions.push(Question {
                    text: format!("Which company was founded earlier, {} or {}?", a.0, b.0),
                    answer: earlier.clone(),
                    gold_docs: vec![doc(&a.0), doc(&b.0)],
                    plan: vec![a.0.clone(), b.0.clone()],
                    hops: 2,
                });
            }
        }
        Kb { docs, questions }
    }

    /// The corpus as Search-R1 JSONL lines (`id`, `contents` = `"title"\ntext`).
    pub fn corpus_jsonl(&self) -> String {
        self.docs
            .iter()
            .map(|d| serde_json::json!({"id": d.id.to_string(), "contents": format!("\"{}\"\n{}", d.title, d.text)}).to_string() + "\n")
            .collect()
    }
}

const STOP: [&str; 24] = [
    "a", "an", "the", "of", "in", "is", "was", "which", "who", "what", "where", "and", "or", "to",
    "by", "its", "it", "for", "on", "does", "did", "have", "has", "at",
];

/// Lower-cased alphanumeric tokens without stop words.
pub fn tokenize(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .filter(|t| !STOP.contains(&t.as_str()))
        .collect()
}

/// An Okapi BM25 index.
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25 {
    postings: BTreeMap<String, Vec<(usize, u32)>>,
    doc_len: Vec<f64>,
    avg_len: f64,
    /// k1 parameter.
    pub k1: f64,
    /// b parameter.
    pub b: f64,
}

impl Bm25 {
    /// Indexes texts (doc id = position).
    pub fn new(texts: &[String]) -> Self {
        let mut postings: BTreeMap<String, Vec<(usize, u32)>> = BTreeMap::new();
        let mut doc_len = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let toks = tokenize(t);
            doc_len.push(toks.len() as f64);
            let mut tf: BTreeMap<String, u32> = BTreeMap::new();
            for tok in toks {
                *tf.entry(tok).or_insert(0) += 1;
            }
            for (tok, f) in tf {
                postings.entry(tok).or_default().push((i, f));
            }
        }
        let avg_len = if doc_len.is_empty() {
            0.0
        } else {
            doc_len.iter().sum::<f64>() / doc_len.len() as f64
        };
        Bm25 {
            postings,
            doc_len,
            avg_len,
            k1: 0.9,
            b: 0.4,
        }
    }
    /// Top-k `(doc id, score)` for a query, best first, ties by doc id.
    pub fn search(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let n = self.doc_len.len() as f64;
        let mut scores: BTreeMap<usize, f64> = BTreeMap::new();
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        for t in terms {
            let Some(p) = self.postings.get(&t) else {
                continue;
            };
            let df = p.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, f) in p {
                let f = f64::from(f);
                let norm =
                    self.k1 * (1.0 - self.b + self.b * self.doc_len[d] / self.avg_len.max(1e-9));
                *scores.entry(d).or_insert(0.0) += idf * f * (self.k1 + 1.0) / (f + norm);
            }
        }
        let mut v: Vec<(usize, f64)> = scores.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_prefers_matching_docs() {
        let idx = Bm25::new(&[
            "red apple pie".into(),
            "green apple".into(),
            "blue sky".into(),
        ]);
        let r = idx.search("apple pie", 3);
        assert_eq!(r[0].0, 0);
        assert_eq!(r.len(), 2);
        assert!(idx.search("the of", 3).is_empty());
    }

    #[test]
    fn titles_retrieve_their_doc() {
        let kb = Kb::generate(5, KbSize::default());
        let idx = Bm25::new(
            &kb.docs
                .iter()
                .map(|d| format!("{} {}", d.title, d.text))
                .collect::<Vec<_>>(),
        );
        let mut hits = 0;
        for d in &kb.docs {
            if idx.search(&d.title, 3).iter().any(|(i, _)| *i == d.id) {
                hits += 1;
            }
        }
        assert_eq!(hits, kb.docs.len());
        assert!(kb.corpus_jsonl().lines().count() == kb.docs.len());
    }
}
