//! Flat-tree arithmetic and Merkle tree nodes. Leaves (blocks) sit at even indexes
//! (`2 * seq`), parents at odd indexes; a log of length `n` is summarised by the "full roots"
//! of `2 * n`. Node `i` is stored in the `tree` file at byte `40 * i` as `u64le(size) ‖ hash`.

/// One Merkle tree node: its flat-tree index, the byte size it spans and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Flat-tree index.
    pub index: u64,
    /// Total bytes of the blocks under this node.
    pub size: u64,
    /// BLAKE2b-256 hash.
    pub hash: [u8; 32],
}

impl Node {
    /// A blank (absent) node as stored on disk: size 0, zero hash.
    pub fn blank(index: u64) -> Node {
        Node {
            index,
            size: 0,
            hash: [0; 32],
        }
    }

    /// Whether this is the blank marker.
    pub fn is_blank(&self) -> bool {
        self.size == 0 && self.hash == [0; 32]
    }

    /// The 40-byte on-disk form.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    /// Parses the 40-byte on-disk form.
    pub fn from_bytes(index: u64, b: &[u8; 40]) -> Node {
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[..8]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..]);
        Node {
            index,
            size: u64::from_le_bytes(size),
            hash,
        }
    }
}

/// Depth of a node (number of trailing one bits).
pub fn depth(index: u64) -> u32 {
    (!index).trailing_zeros()
}

/// Offset of a node within its depth.
pub fn offset(index: u64) -> u64 {
    let d = depth(index);
    if d >= 63 {
        0
    } else {
        index >> (d + 1)
    }
}

/// Index of the node at `depth`, `offset`.
pub fn index(depth: u32, offset: u64) -> u64 {
    (offset << (depth + 1)) | ((1u64 << depth) - 1)
}

/// Parent of a node.
pub fn parent(i: u64) -> u64 {
    let d = depth(i);
    index(d + 1, offset(i) >> 1)
}

/// Sibling of a node.
pub fn sibling(i: u64) -> u64 {
    let d = depth(i);
    index(d, offset(i) ^ 1)
}

/// Leftmost leaf under a node.
pub fn left_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        i
    } else {
        offset(i) << (d + 1)
    }
}

/// Rightmost leaf under a node.
pub fn right_span(i: u64) -> u64 {
    let d = depth(i);
    if d == 0 {
        i
    } else {
        ((offset(i) + 1) << (d + 1)) - 2
    }
}

/// Number of leaves under a node.
pub fn count_leaves(i: u64) -> u64 {
    1u64 << depth(i)
}

/// The full roots of a tree whose leaves end before flat index `head` (`head = 2 * length`).
pub fn full_roots(head: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut leaves = head / 2;
    let mut off = 0u64;
    while leaves > 0 {
        let mut factor = 1u64;
        while factor * 2 <= leaves {
            factor *= 2;
        }
        out.push(off + factor - 1);
        off += 2 * factor;
        leaves -= factor;
    }
    out
}

/// Sum of the spans of a list of roots, i.e. `2 * length` of the tree they describe.
pub fn total_span(roots: &[Node]) -> u64 {
    let mut s = 0u64;
    for r in roots {
        s += 2 * ((r.index - s) + 1);
    }
    s
}

/// A walking cursor over the flat tree (as the `flat-tree` iterator moves).
#[derive(Debug, Clone, Copy)]
pub struct Iter {
    /// Current index.
    pub index: u64,
    /// Offset of the current node within its depth.
    pub offset: u64,
    /// `2 * count_leaves` of the current node.
    pub factor: u64,
}

impl Iter {
    /// A cursor at `index`.
    pub fn new(index: u64) -> Self {
        let mut it = Iter {
            index: 0,
            offset: 0,
            factor: 0,
        };
        it.seek(index);
        it
    }

    /// Moves to `index`.
    pub fn seek(&mut self, index: u64) {
        self.index = index;
        if index & 1 == 1 {
            self.offset = offset(index);
            self.factor = 1u64 << (depth(index) + 1);
        } else {
            self.offset = index / 2;
            self.factor = 2;
        }
    }

    /// Whether the current node is a left child.
    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    /// Whether `index` lies under the current node.
    pub fn contains(&self, index: u64) -> bool {
        let half = self.factor / 2;
        if index > self.index {
            index < self.index + half
        } else if index < self.index {
            index + half > self.index
        } else {
            true
        }
    }

    /// Moves to the sibling.
    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.offset += 1;
            self.index += self.factor;
        } else if self.offset > 0 {
            self.offset -= 1;
            self.index -= self.factor;
        }
        self.index
    }

    /// Moves to the parent.
    pub fn parent(&mut self) -> u64 {
        if self.offset & 1 == 1 {
            self.index -= self.factor / 2;
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index += self.factor / 2;
            self.offset /= 2;
        }
        self.factor *= 2;
        self.index
    }

    /// Moves to the left child (stays on a leaf).
    pub fn left_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index -= self.factor / 2;
        self.offset *= 2;
        self.index
    }

    /// Moves to the right child (stays on a leaf).
    pub fn right_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index += self.factor / 2;
        self.offset = 2 * self.offset + 1;
        self.index
    }

    /// Leaves under the current node.
    pub fn count_leaves(&self) -> u64 {
        self.factor / 2
    }

    /// Climbs to the largest full root starting here that ends before `head`; false when
    /// no tree starts here.
    pub fn full_root(&mut self, head: u64) -> bool {
        if head <= self.index || self.index & 1 == 1 {
            return false;
        }
        while head > self.index + self.factor + self.factor / 2 {
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }

    /// Moves to the first leaf after the current node's span.
    pub fn next_tree(&mut self) -> u64 {
        self.index = self.index + self.factor / 2 + 1;
        self.offset = self.index / 2;
        self.factor = 2;
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_tree_math_matches_known_values() {
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(full_roots(2), vec![0]);
        assert_eq!(full_roots(6), vec![1, 4]);
        assert_eq!(full_roots(16), vec![7]);
        assert_eq!(full_roots(22), vec![7, 17, 20]);
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(1), 5);
        assert_eq!(sibling(4), 6);
        assert_eq!(left_span(7), 0);
        assert_eq!(right_span(7), 14);
        assert_eq!(right_span(4), 4);
        assert_eq!(count_leaves(3), 4);
        let mut it = Iter::new(0);
        assert!(it.full_root(22));
        assert_eq!(it.index, 7);
        it.next_tree();
        assert!(it.full_root(22));
        assert_eq!(it.index, 17);
    }
}
