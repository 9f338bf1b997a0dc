//! The shape of a view's pipeline: a tree whose leaves are the view's
//! inputs and whose inner nodes are two-input operators (joins, unions).
//! `sql::view_plan` builds it; `stream::view` runs it.

use crate::stream::operator::{Operator, TwoInputOperator};

/// One node of a view's operator tree: a source (an input's feed) or a
/// two-input operator (join, union), followed by a chain of one-input
/// operators.
pub struct Node {
    pub kind: NodeKind,
    pub ops: Vec<Box<dyn Operator>>,
}

pub enum NodeKind {
    /// Index into `ViewPlan::inputs`.
    Input(usize),
    Binary {
        left: Box<Node>,
        right: Box<Node>,
        op: Box<dyn TwoInputOperator>,
    },
}

impl Node {
    pub fn leaf(input: usize) -> Node {
        Node {
            kind: NodeKind::Input(input),
            ops: Vec::new(),
        }
    }

    pub fn binary(left: Node, right: Node, op: Box<dyn TwoInputOperator>) -> Node {
        Node {
            kind: NodeKind::Binary {
                left: Box::new(left),
                right: Box::new(right),
                op,
            },
            ops: Vec::new(),
        }
    }

    pub fn then(mut self, op: impl Operator + 'static) -> Node {
        self.ops.push(Box::new(op));
        self
    }

    /// Whether input `i` feeds this node.
    pub fn reads(&self, i: usize) -> bool {
        match &self.kind {
            NodeKind::Input(j) => *j == i,
            NodeKind::Binary { left, right, .. } => left.reads(i) || right.reads(i),
        }
    }
}
