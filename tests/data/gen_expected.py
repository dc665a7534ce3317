#!/usr/bin/env python3
"""Writes the graph test data the Rust traversal tests compare against.

Run from anywhere with networkx installed (`python3 -m venv v && v/bin/pip install networkx`):

    python3 tests/data/gen_expected.py

For each graph shipped with networkx (Zachary's karate club, the Les Miserables
co-occurrence graph) it writes, next to this script:

- `<name>.edges`: one undirected edge per line, `a b` (ids have no whitespace);
- `<name>.paths`: `src dst length` shortest-path lengths, for every ordered pair whose
  source is one of the chosen sources (all vertices for karate, every 5th for lesmis);
- `<name>.khop`: `src hop v1 v2 ...`, the vertices at exactly `hop` hops (1..4) from each
  chosen source, sorted; an empty layer is a line with no vertices.

Everything is sorted so reruns produce identical files.
"""

import os

import networkx as nx

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_HOP = 4


def write(name, g, path_sources, khop_sources):
    ids = {n: str(n) for n in g.nodes}
    for s in ids.values():
        assert s and not any(c.isspace() for c in s), s
    with open(os.path.join(HERE, f"{name}.edges"), "w") as f:
        for a, b in sorted((ids[a], ids[b]) for a, b in g.edges):
            f.write(f"{a} {b}\n")
    with open(os.path.join(HERE, f"{name}.paths"), "w") as f:
        for s in path_sources:
            lengths = nx.single_source_shortest_path_length(g, s)
            for t in sorted(g.nodes, key=lambda n: ids[n]):
                if t in lengths:
                    f.write(f"{ids[s]} {ids[t]} {lengths[t]}\n")
    with open(os.path.join(HERE, f"{name}.khop"), "w") as f:
        for s in khop_sources:
            lengths = nx.single_source_shortest_path_length(g, s, cutoff=MAX_HOP)
            for hop in range(1, MAX_HOP + 1):
                layer = sorted(ids[n] for n, d in lengths.items() if d == hop)
                f.write(" ".join([ids[s], str(hop)] + layer) + "\n")


def main():
    karate = nx.karate_club_graph()
    nodes = sorted(karate.nodes)
    write("karate", karate, nodes, nodes[::3])

    lesmis = nx.les_miserables_graph()
    nodes = sorted(lesmis.nodes)
    write("lesmis", lesmis, nodes[::5], nodes[::7])


if __name__ == "__main__":
    main()
