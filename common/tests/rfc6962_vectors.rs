//! The exchange log's Merkle code (`caravan_common::merkle`) checked against published
//! known-answer vectors of RFC 6962 / RFC 9162 trees, not only against itself.
//!
//! Source: github.com/transparency-dev/merkle (Google LLC), commit
//! 417fb0c314750d94e53942e9f92e79b6d35915db, Apache License 2.0:
//! - the tree of eight leaves, its node hashes and its roots at every size are
//!   `testonly/constants.go` (`LeafInputs`, `NodeHashes`, `RootHashes`), copied below;
//! - the inclusion and consistency probes are `testdata/inclusion/**` and
//!   `testdata/consistency/**`, stored byte for byte in `samples/merkle/transparency-dev/` with
//!   the licence (`samples/SOURCES.md`). Each holds a proof and whether a verifier must refuse
//!   it (`wantErr`): the happy paths, and each one corrupted in every way the upstream generator
//!   (`cmd/proofgen`) knows (wrong index or size, flipped bits, garbage before or after, wrong
//!   roots, sizes 0, size1 > size2).
//!
//! The prover is checked as the hub runs it: over nodes stored as the log grows
//! (`appended_nodes`), never over the leaves.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use base64::Engine;
use caravan_common::merkle::{
    self, Hash, Nodes, appended_nodes, consistency_path, inclusion_path, leaf_hash, root_of,
    verify_consistency, verify_inclusion,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `testonly.LeafInputs()`.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `testonly.RootHashes()`: the root of the first `n` leaves, from the empty tree to all eight.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `testonly.NodeHashes()`: every perfect subtree of the eight leaves, by level, then index.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

fn hash(hex: &str) -> Hash {
    hex::decode(hex).expect("hex").try_into().expect("32 bytes")
}

/// A log that stores the nodes each append completes, as the hub's store does.
#[derive(Default)]
struct StoredLog {
    nodes: HashMap<(u32, u64), Hash>,
    size: u64,
}

impl StoredLog {
    fn append(&mut self, entry: &[u8]) {
        let added = appended_nodes(self.size, leaf_hash(entry), |level, index| {
            self.nodes.get(&(level, index)).copied().ok_or(())
        })
        .expect("left siblings are stored");
        self.nodes
            .extend(added.into_iter().map(|(l, i, h)| ((l, i), h)));
        self.size += 1;
    }
}

impl Nodes for StoredLog {
    type Error = ();
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, ()> {
        self.nodes.get(&(level, index)).copied().ok_or(())
    }
}

/// The eight-leaf tree of the vectors, built by appending.
fn vector_log() -> StoredLog {
    let mut log = StoredLog::default();
    for input in LEAF_INPUTS {
        log.append(&hex::decode(input).expect("hex"));
    }
    log
}

#[test]
fn stored_nodes_and_roots_match_the_published_tree() {
    let log = vector_log();
    for (level, row) in NODES.iter().enumerate() {
        for (index, expected) in row.iter().enumerate() {
            assert_eq!(
                log.perfect(level as u32, index as u64),
                Ok(hash(expected)),
                "node at level {level}, index {index}"
            );
        }
    }
    // Exactly the perfect subtrees are stored: 8 + 4 + 2 + 1.
    assert_eq!(log.nodes.len(), 15);
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            root_of(&log, size as u64),
            Ok(hash(expected)),
            "root of size {size}"
        );
    }
    let leaves: Vec<Hash> = LEAF_INPUTS
        .iter()
        .map(|i| leaf_hash(&hex::decode(i).unwrap()))
        .collect();
    assert_eq!(merkle::root(&leaves), hash(ROOTS[8]));
}

/// A probe's byte strings, base64 as Go's encoding/json writes `[]byte` (`null` for nil).
type Bytes = Option<String>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InclusionProbe {
    leaf_idx: u64,
    tree_size: u64,
    root: Bytes,
    leaf_hash: Bytes,
    proof: Option<Vec<Bytes>>,
    desc: String,
    want_err: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyProbe {
    size1: u64,
    size2: u64,
    root1: Bytes,
    root2: Bytes,
    proof: Option<Vec<Bytes>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

fn bytes(b: &Bytes) -> Vec<u8> {
    b.as_deref()
        .map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64")
        })
        .unwrap_or_default()
}

/// A 32-byte value, or `None` for any other length: the log's wire decoding
/// (`caravan_proto::log`) refuses those before any proof is checked, so for a probe they count
/// as refused. Upstream's verifier takes roots of any length and compares them as bytes; the
/// probes that name such a root and expect acceptance are listed in the tests, by name.
fn hash32(b: &Bytes) -> Option<Hash> {
    bytes(b).try_into().ok()
}

fn proof32(p: &Option<Vec<Bytes>>) -> Option<Vec<Hash>> {
    p.iter().flatten().map(hash32).collect()
}

fn vectors(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/merkle/transparency-dev")
        .join(kind)
}

/// Every `.json` file under `dir`, parsed, with its path; sorted for stable messages.
fn probes<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<(PathBuf, T)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("vector folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("vector file");
                let probe = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, probe));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn inclusion_proofs_are_judged_as_the_published_probes_say() {
    let all: Vec<(PathBuf, InclusionProbe)> = probes(&vectors("inclusion"));
    assert_eq!(all.len(), 98, "every inclusion probe read");
    let log = vector_log();
    let (mut accepted, mut refused, mut proved) = (0, 0, 0);
    let mut undecodable = Vec::new();
    for (path, p) in &all {
        let verdict = match (hash32(&p.leaf_hash), hash32(&p.root), proof32(&p.proof)) {
            (Some(leaf), Some(root), Some(proof)) => {
                verify_inclusion(p.leaf_idx, p.tree_size, &leaf, &proof, &root)
            }
            _ if !p.want_err => {
                undecodable.push(name(path));
                continue;
            }
            _ => false,
        };
        assert_eq!(
            verdict,
            !p.want_err,
            "{} ({}): {p:?}",
            path.display(),
            p.desc
        );
        if !verdict {
            refused += 1;
            continue;
        }
        accepted += 1;
        // A proof the vectors accept for a leaf of the eight-leaf tree is the one our
        // stored-node prover gives.
        let leaf = hash32(&p.leaf_hash).unwrap();
        if p.tree_size <= 8 && log.perfect(0, p.leaf_idx) == Ok(leaf) {
            assert_eq!(
                inclusion_path(&log, p.leaf_idx, p.tree_size),
                Ok(proof32(&p.proof).unwrap()),
                "{}",
                path.display()
            );
            assert_eq!(
                root_of(&log, p.tree_size),
                Ok(hash32(&p.root).unwrap()),
                "{}",
                path.display()
            );
            proved += 1;
        }
    }
    // The five happy paths of the upstream table, one single-entry tree, and the rest refused.
    assert_eq!((accepted, proved), (6, 5), "accepted and proved again");
    assert_eq!(refused, all.len() - 6);
    assert_eq!(undecodable, Vec::<String>::new());
}

#[test]
fn consistency_proofs_are_judged_as_the_published_probes_say() {
    let all: Vec<(PathBuf, ConsistencyProbe)> = probes(&vectors("consistency"));
    assert_eq!(all.len(), 98, "every consistency probe read");
    let log = vector_log();
    let (mut accepted, mut proved) = (0, 0);
    let mut undecodable = Vec::new();
    for (path, p) in &all {
        let verdict = match (hash32(&p.root1), hash32(&p.root2), proof32(&p.proof)) {
            (Some(first), Some(second), Some(proof)) => {
                verify_consistency(p.size1, p.size2, &first, &second, &proof)
            }
            _ if !p.want_err => {
                // Roots that are not SHA-256 sized; the same check with a stand-in for each
                // (equal roots get equal stand-ins) must pass.
                let stand_in = |b: &Bytes| -> Hash { Sha256::digest(bytes(b)).into() };
                assert!(
                    verify_consistency(
                        p.size1,
                        p.size2,
                        &stand_in(&p.root1),
                        &stand_in(&p.root2),
                        &proof32(&p.proof).expect("a proof of hashes"),
                    ),
                    "{}",
                    path.display()
                );
                undecodable.push(name(path));
                continue;
            }
            _ => false,
        };
        assert_eq!(
            verdict,
            !p.want_err,
            "{} ({}): {p:?}",
            path.display(),
            p.desc
        );
        if !verdict {
            continue;
        }
        accepted += 1;
        let (first, second) = (hash32(&p.root1).unwrap(), hash32(&p.root2).unwrap());
        if p.size2 <= 8
            && root_of(&log, p.size1) == Ok(first)
            && root_of(&log, p.size2) == Ok(second)
        {
            assert_eq!(
                consistency_path(&log, p.size1, p.size2),
                Ok(proof32(&p.proof).unwrap()),
                "{}",
                path.display()
            );
            proved += 1;
        }
    }
    // The five happy paths of the upstream table, each the prover's own proof.
    assert_eq!((accepted, proved), (5, 5), "accepted and proved again");
    assert_eq!(
        undecodable,
        ["additional/sizes-are-equal-one-and-proof-is-empty.json"]
    );
}

/// A probe's path below the vectors' folder, for messages and the lists above.
fn name(path: &Path) -> String {
    path.components()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}
