//! The Merkle tree of the exchange log, as RFC 9162 (Certificate Transparency 2.0, section 2.1)
//! defines it: leaves hashed as SHA-256(0x00 || entry), nodes as SHA-256(0x01 || left ||
//! right), the tree split at the largest power of two below its size. Inclusion proofs show an
//! entry is in a tree head; consistency proofs show a later tree head only appended to an
//! earlier one.
//!
//! A running log keeps the hash of every perfect subtree ([`Nodes`]), so that a root or a proof
//! costs O(log n) lookups; audits and tests hold the leaves as a slice, which is a `Nodes` too.
//! Hub and spokes share this module: the hub proves, the spokes check.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The hash of a log entry as a leaf.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash of `leaves` (MTH); the empty tree hashes to SHA-256 of nothing.
/// Recomputes everything: for audits and tests. A running log uses [`Nodes`].
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Where a growing log keeps its tree: the hash of every perfect subtree, so that roots and
/// proofs cost O(log n) lookups instead of a pass over the whole log. `perfect(level, index)`
/// is the root of leaves `index * 2^level .. (index + 1) * 2^level`, all of which exist.
pub trait Nodes {
    type Error;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// A log held as its leaf hashes (tests, audits).
impl Nodes for [Hash] {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        let start = (index << level) as usize;
        Ok(root(&self[start..start + (1usize << level)]))
    }
}

/// MTH of leaves `lo..hi`.
fn range_hash<N: Nodes + ?Sized>(nodes: &N, lo: u64, hi: u64) -> Result<Hash, N::Error> {
    let len = hi - lo;
    if len == 0 {
        return Ok(Sha256::digest([]).into());
    }
    if len.is_power_of_two() && lo.is_multiple_of(len) {
        return nodes.perfect(len.trailing_zeros(), lo >> len.trailing_zeros());
    }
    let k = split(len);
    Ok(node_hash(
        &range_hash(nodes, lo, lo + k)?,
        &range_hash(nodes, lo + k, hi)?,
    ))
}

/// The root of the tree of the first `size` leaves.
pub fn root_of<N: Nodes + ?Sized>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    range_hash(nodes, 0, size)
}

/// The inclusion proof of leaf `index` (from 0) in the tree of the first `size` leaves
/// (RFC 9162 PATH).
pub fn inclusion_path<N: Nodes + ?Sized>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, N::Error> {
    fn path<N: Nodes + ?Sized>(n: &N, m: u64, lo: u64, hi: u64) -> Result<Vec<Hash>, N::Error> {
        if hi - lo <= 1 {
            return Ok(Vec::new());
        }
        let k = split(hi - lo);
        let mut proof;
        if m < lo + k {
            proof = path(n, m, lo, lo + k)?;
            proof.push(range_hash(n, lo + k, hi)?);
        } else {
            proof = path(n, m, lo + k, hi)?;
            proof.push(range_hash(n, lo, lo + k)?);
        }
        Ok(proof)
    }
    path(nodes, index, 0, size)
}

/// The consistency proof between the trees of the first `m` and the first `n` leaves (RFC 9162
/// PROOF); empty when `m` is 0 or not below `n`.
pub fn consistency_path<N: Nodes + ?Sized>(
    nodes: &N,
    m: u64,
    n: u64,
) -> Result<Vec<Hash>, N::Error> {
    fn subproof<N: Nodes + ?Sized>(
        nodes: &N,
        m: u64,
        lo: u64,
        hi: u64,
        complete: bool,
    ) -> Result<Vec<Hash>, N::Error> {
        if lo + m == hi {
            return Ok(if complete {
                Vec::new()
            } else {
                vec![range_hash(nodes, lo, hi)?]
            });
        }
        let k = split(hi - lo);
        let mut proof;
        if m <= k {
            proof = subproof(nodes, m, lo, lo + k, complete)?;
            proof.push(range_hash(nodes, lo + k, hi)?);
        } else {
            proof = subproof(nodes, m - k, lo + k, hi, false)?;
            proof.push(range_hash(nodes, lo, lo + k)?);
        }
        Ok(proof)
    }
    if m == 0 || m >= n {
        return Ok(Vec::new());
    }
    subproof(nodes, m, 0, n, true)
}

/// The inclusion proof of leaf `index` in the tree of all of `leaves`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let Ok(path) = inclusion_path(leaves, index as u64, leaves.len() as u64);
    path
}

/// The consistency proof between the tree of the first `m` leaves and the tree of all of
/// `leaves`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let Ok(path) = consistency_path(leaves, m as u64, leaves.len() as u64);
    path
}

/// The nodes a log stores when it appends leaf `index` (from 0) with hash `leaf`: the leaf at
/// level 0, then every perfect subtree it completes, as (level, index, hash). `left(level, i)`
/// reads a node stored earlier (the left sibling).
pub fn appended_nodes<E>(
    index: u64,
    leaf: Hash,
    mut left: impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Vec<(u32, u64, Hash)>, E> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut i, mut hash) = (0u32, index, leaf);
    while i & 1 == 1 {
        hash = node_hash(&left(level, i - 1)?, &hash);
        level += 1;
        i >>= 1;
        out.push((level, i, hash));
    }
    Ok(out)
}

/// Hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Check an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Check a consistency proof (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, first: &Hash, second: &Hash, proof: &[Hash]) -> bool {
    if m == n {
        return proof.is_empty() && first == second;
    }
    if m == 0 || m > n || proof.is_empty() {
        return false;
    }
    let mut proof = proof.to_vec();
    if m.is_power_of_two() {
        proof.insert(0, *first);
    }
    let (mut fn_, mut sn) = (m - 1, n - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (proof[0], proof[0]);
    for c in &proof[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first && sr == *second && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn small_trees_hash_as_the_rfc_defines() {
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l[..2]), node_hash(&l[0], &l[1]));
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(leaf_hash(b""), <[u8; 32]>::from(Sha256::digest([0u8])));
    }

    #[test]
    fn every_inclusion_proof_verifies_and_wrong_ones_do_not() {
        for n in 1..40 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let proof = inclusion_proof(i, &l);
                assert!(
                    verify_inclusion(i as u64, n as u64, &l[i], &proof, &r),
                    "n={n} i={i}"
                );
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(i as u64, n as u64, &other, &proof, &r));
                if n > 1 {
                    assert!(
                        !verify_inclusion(((i + 1) % n) as u64, n as u64, &l[i], &proof, &r)
                            || l[i] == l[(i + 1) % n]
                    );
                }
            }
        }
    }

    /// A log that stores nodes as it grows, as the hub's store does.
    #[derive(Default)]
    struct Growing(std::collections::HashMap<(u32, u64), Hash>, u64);

    impl Growing {
        fn append(&mut self, leaf: Hash) {
            let nodes = appended_nodes(self.1, leaf, |l, i| {
                Ok::<_, ()>(*self.0.get(&(l, i)).expect("left sibling stored"))
            })
            .unwrap();
            for (l, i, h) in nodes {
                self.0.insert((l, i), h);
            }
            self.1 += 1;
        }
    }

    impl Nodes for Growing {
        type Error = ();
        fn perfect(&self, level: u32, index: u64) -> Result<Hash, ()> {
            self.0.get(&(level, index)).copied().ok_or(())
        }
    }

    #[test]
    fn stored_nodes_give_the_same_roots_and_proofs_as_the_leaves() {
        let all = leaves(70);
        let mut log = Growing::default();
        for (n, leaf) in all.iter().enumerate() {
            log.append(*leaf);
            let size = n as u64 + 1;
            let l = &all[..=n];
            assert_eq!(root_of(&log, size).unwrap(), root(l), "size {size}");
            for i in 0..=n {
                assert_eq!(
                    inclusion_path(&log, i as u64, size).unwrap(),
                    inclusion_proof(i, l)
                );
            }
            for m in 1..=size {
                let p = consistency_path(&log, m, size).unwrap();
                assert!(verify_consistency(
                    m,
                    size,
                    &root(&all[..m as usize]),
                    &root(l),
                    &p
                ));
            }
        }
        // Only perfect subtrees are stored: about two nodes per leaf.
        assert!(log.0.len() < 2 * all.len());
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_history_does_not() {
        for n in 1..34 {
            let l = leaves(n);
            for m in 1..=n {
                let proof = consistency_proof(m, &l);
                assert!(
                    verify_consistency(m as u64, n as u64, &root(&l[..m]), &root(&l), &proof),
                    "m={m} n={n}"
                );
                // The same tree with one old entry changed is not an extension of the first.
                if m < n {
                    let mut rewritten = l.clone();
                    rewritten[0] = leaf_hash(b"rewritten");
                    let proof = consistency_proof(m, &rewritten);
                    assert!(
                        !verify_consistency(
                            m as u64,
                            n as u64,
                            &root(&l[..m]),
                            &root(&rewritten),
                            &proof
                        ),
                        "m={m} n={n}"
                    );
                }
            }
        }
    }
}
