//! The one topological sort: packages by their dependencies, statements by
//! what they reference.
//!
//! Nodes are `0..n` and their index is their priority: among the nodes
//! whose dependencies are all placed, the lowest index goes first (Kahn's
//! algorithm with a heap). So the order is deterministic and as close to
//! index order as the dependencies allow, whatever order edges were added in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

/// Orders `0..deps.len()` so that every node comes after each node in
/// `deps[node]`. On cycles, returns every one [`cycles`] finds (at least
/// one), lowest first.
pub fn toposort(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let count = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (node, targets) in deps.iter().enumerate() {
        for &target in targets {
            dependents[target].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..count)
        .filter(|&node| waiting[node] == 0)
        .map(Reverse)
        .collect();
    let mut sequence = Vec::with_capacity(count);
    while let Some(Reverse(node)) = ready.pop() {
        sequence.push(node);
        for &dependent in &dependents[node] {
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if sequence.len() < count {
        return Err(cycles(deps, &waiting));
    }
    Ok(sequence)
}

/// The cycles among the nodes the sort could not place (`waiting > 0`):
/// one per strongly connected component, ordered by their lowest node,
/// each walked from that node through every member and back, each node
/// depending on the next and the last on the first. The first node is not
/// repeated at the end; with several loops through one node, the walk
/// passes it again.
fn cycles(deps: &[Vec<usize>], waiting: &[usize]) -> Vec<Vec<usize>> {
    let mut graph: DiGraphMap<usize, (), std::hash::RandomState> = DiGraphMap::default();
    for (node, targets) in deps.iter().enumerate() {
        if waiting[node] == 0 {
            continue;
        }
        graph.add_node(node);
        for &target in targets {
            if waiting[target] > 0 {
                graph.add_edge(node, target, ());
            }
        }
    }
    let mut components: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|component| component.len() > 1 || deps[component[0]].contains(&component[0]))
        .collect();
    components.sort_by_key(|component| component.iter().min().copied());
    components
        .into_iter()
        .map(|component| walk(deps, &component))
        .collect()
}

/// A walk through every member of a strongly connected component, from
/// its lowest node back to it.
fn walk(deps: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let members: HashSet<usize> = component.iter().copied().collect();
    let Some(start) = component.iter().min().copied() else {
        return Vec::new();
    };
    let mut walk = vec![start];
    let mut visited: HashSet<usize> = HashSet::from([start]);
    let mut at = start;
    while visited.len() < members.len() {
        let step = shortest_path(deps, &members, at, |node| !visited.contains(&node));
        let Some(&end) = step.last() else { break };
        visited.extend(step.iter().copied());
        walk.extend(step);
        at = end;
    }
    let back = shortest_path(deps, &members, at, |node| node == start);
    walk.extend(back.iter().take(back.len().saturating_sub(1)));
    walk
}

/// The nodes after `from` on a shortest path (breadth first, edges in
/// ascending order) to the first node satisfying `goal`, staying inside
/// `members`. `goal` may accept `from` itself, reached again via a loop.
fn shortest_path(
    deps: &[Vec<usize>],
    members: &HashSet<usize>,
    from: usize,
    goal: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut previous: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        let mut next_nodes: Vec<usize> = deps[node].clone();
        next_nodes.sort_unstable();
        for next in next_nodes {
            if !members.contains(&next) {
                continue;
            }
            if goal(next) {
                let mut path = vec![next];
                let mut at = node;
                while at != from {
                    path.push(at);
                    at = previous[&at];
                }
                path.reverse();
                return path;
            }
            if next != from && !previous.contains_key(&next) {
                previous.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_ready_index_first() {
        // 0 waits for 2; 1 and 2 are free.
        assert_eq!(toposort(&[vec![2], vec![], vec![]]), Ok(vec![1, 2, 0]));
        assert_eq!(toposort(&[]), Ok(vec![]));
    }

    #[test]
    fn a_cycle_is_walked_through_every_member() {
        // 3 -> 0 -> 1 -> 2 -> 0, and 4 is free.
        let deps = [vec![1], vec![2], vec![0], vec![0], vec![]];
        assert_eq!(toposort(&deps), Err(vec![vec![0, 1, 2]]));
        // A node that depends on itself.
        assert_eq!(toposort(&[vec![], vec![1]]), Err(vec![vec![1]]));
    }

    #[test]
    fn every_cycle_is_found() {
        // 0 <-> 1, and 2 -> 3 -> 4 -> 2; 5 waits for both loops.
        let deps = [vec![1], vec![0], vec![3], vec![4], vec![2], vec![0, 2]];
        assert_eq!(toposort(&deps), Err(vec![vec![0, 1], vec![2, 3, 4]]));
    }
}
