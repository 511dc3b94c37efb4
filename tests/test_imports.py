"""The import graph of pikelpn_jax/ and experiments/: no cycles between modules nor between
pikelpn_jax's packages, no private names across modules, and raw jaxpr equation params read only
by pikelpn_jax/_jax_internals.py.

Imports inside functions count too: a cycle dodged by a late import is still a cycle.
"""

import ast
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("pikelpn_jax", "experiments")
# The one module every other module may reach into: the JAX-internals boundary (its canary test
# is tests/test_jax_internals.py). Its name is private so that nothing else looks like it.
INTERNALS = "pikelpn_jax._jax_internals"

# Known offences, each one exact; the test fails on an entry that no longer occurs, so the lists
# can only shrink. ALLOWED_PRIVATE: (module, private name) pairs.
ALLOWED_PRIVATE = set()
# frozensets of module names
ALLOWED_CYCLES = set()
# frozensets of package nodes (see package_of)
ALLOWED_PACKAGE_CYCLES = set()


def modules():
  """{module name: path} of every .py file under PACKAGES."""
  out = {}
  for pkg in PACKAGES:
    for root, _, files in os.walk(os.path.join(REPO, pkg)):
      for f in files:
        if f.endswith(".py"):
          rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
          out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(
            root, f
          )
  return out


MODULES = modules()


def is_private(name):
  return name.startswith("_") and not name.startswith("__")


def imports(module, path):
  """[(imported module, private name or None)] of every import in `module` (any depth)."""
  tree = ast.parse(open(path).read(), path)
  package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
  out, bound = [], {}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if a.name in MODULES:
          out.append((a.name, None))
          bound[a.asname or a.name] = a.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(
          package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
        )
      for a in node.names:
        full = f"{base}.{a.name}"
        if full in MODULES:
          out.append((full, full if is_private(a.name) else None))
          bound[a.asname or a.name] = full
        elif base in MODULES:
          out.append((base, full if is_private(a.name) else None))
  # module._name: a private attribute of an imported project module
  for node in ast.walk(tree):
    if (
      isinstance(node, ast.Attribute)
      and isinstance(node.value, ast.Name)
      and node.value.id in bound
      and is_private(node.attr)
    ):
      out.append((bound[node.value.id], f"{bound[node.value.id]}.{node.attr}"))
  return out


GRAPH = {m: imports(m, p) for m, p in MODULES.items()}


def private_offences():
  found = set()
  for user, deps in GRAPH.items():
    for dep, private in deps:
      if private is None or dep == user:
        continue
      if private == INTERNALS or private.startswith(INTERNALS + "."):
        continue
      owner = private.rpartition(".")[0] if private not in MODULES else private
      if owner == user:
        continue
      found.add((user, private))
  return found


def package_of(module):
  """The node of a pikelpn_jax module in the package graph (None outside pikelpn_jax).

  A subpackage is one node (pikelpn_jax.ace holds pikelpn_jax.ace.walker), a top-level module is
  its own (pikelpn_jax.config_base). A package's entry point (`python -m pikelpn_jax.ace` runs
  pikelpn_jax/ace/__main__.py) is a node of its own too: no module imports it, importing the
  package never runs it, and it sits above every package (the analyzer's CLI restores training
  checkpoints; the training package reports ACEv2).
  """
  parts = module.split(".")
  if parts[0] != "pikelpn_jax":
    return None
  if parts[-1] == "__main__":
    return module
  return ".".join(parts[:2])


def package_graph(graph=None):
  """{package node: {package node: [the module imports making that edge]}} of pikelpn_jax."""
  out = {}
  for user, deps in (GRAPH if graph is None else graph).items():
    a = package_of(user)
    if a is None:
      continue
    out.setdefault(a, {})
    for dep, _ in deps:
      b = package_of(dep)
      if b is not None and b != a:
        out[a].setdefault(b, []).append(f"{user} -> {dep}")
  return out


def cycles(edges=None):
  """Strongly connected components with more than one node (Tarjan) of `edges` ({node: [node]};
  default: the module graph)."""
  index, low, stack, on, out = {}, {}, [], set(), []
  if edges is None:
    edges = {m: sorted({d for d, _ in deps if d != m}) for m, deps in GRAPH.items()}
  edges = {v: sorted(ws) for v, ws in edges.items()}
  for ws in list(edges.values()):
    for w in ws:
      edges.setdefault(w, [])

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in edges[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = set()
      while True:
        w = stack.pop()
        on.discard(w)
        comp.add(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(frozenset(comp))

  for m in sorted(edges):
    if m not in index:
      visit(m)
  return out


def test_the_graph_sees_the_packages():
  assert {"pikelpn_jax.export.rules", "pikelpn_jax.train.loop", "experiments.ablations"} <= set(
    MODULES
  )
  assert ("pikelpn_jax.export.helpers", None) in GRAPH["pikelpn_jax.export.rules"]


def test_no_import_cycles():
  found = cycles()
  assert [sorted(c) for c in found if c not in ALLOWED_CYCLES] == [], "import cycles"
  assert [sorted(c) for c in ALLOWED_CYCLES if c not in found] == [], "fixed: shrink ALLOWED_CYCLES"


PACKAGES_OF_PIKELPN = (
  "ace",
  "data",
  "export",
  "layers",
  "models",
  "quant",
  "search",
  "train",
  "_jax_internals",
  "config_base",
  "jaxpr_interpreter",
)


def test_the_package_graph_sees_the_packages_and_late_imports():
  graph = package_graph()
  assert {f"pikelpn_jax.{p}" for p in PACKAGES_OF_PIKELPN} <= set(graph)
  assert "pikelpn_jax.ace.__main__" in graph  # an entry point is its own node
  assert "pikelpn_jax.ace.walker" not in graph  # a module is inside its package's node
  # the export's ACEv2 comparison: a module-level import
  assert (
    "pikelpn_jax.export.evaluate -> pikelpn_jax.ace"
    in graph["pikelpn_jax.export"]["pikelpn_jax.ace"]
  )
  # the analyzer's model zoo: an import inside a function counts as well
  assert (
    "pikelpn_jax.ace.api -> pikelpn_jax.models" in graph["pikelpn_jax.ace"]["pikelpn_jax.models"]
  )


def test_no_package_cycles():
  """No two packages of pikelpn_jax import each other, directly or around a loop, counting every
  import (function-local ones too): each package can be read, tested and replaced above the ones
  it uses."""
  graph = package_graph()
  found = cycles({a: list(bs) for a, bs in graph.items()})
  where = {
    "+".join(sorted(c)): sorted(m for a in c for b, ms in graph[a].items() if b in c for m in ms)
    for c in found
    if c not in ALLOWED_PACKAGE_CYCLES
  }
  assert where == {}, "package cycles (the imports that make them)"
  stale = [sorted(c) for c in ALLOWED_PACKAGE_CYCLES if c not in found]
  assert stale == [], "fixed: shrink ALLOWED_PACKAGE_CYCLES"


def test_the_package_cycle_check_catches_a_late_import(tmp_path):
  # train imports ace at module level, ace imports train inside a function: one cycle.
  ace, train = tmp_path / "ace.py", tmp_path / "train.py"
  ace.write_text("def restore():\n  from pikelpn_jax.train.checkpoint import restore_latest\n")
  train.write_text("from pikelpn_jax.ace import acev2_report\n")
  graph = {
    "pikelpn_jax.ace.cli": imports("pikelpn_jax.ace.cli", str(ace)),
    "pikelpn_jax.train.loop": imports("pikelpn_jax.train.loop", str(train)),
  }
  edges = {a: list(bs) for a, bs in package_graph(graph).items()}
  assert cycles(edges) == [frozenset({"pikelpn_jax.ace", "pikelpn_jax.train"})]
  # the same import in an entry point closes no cycle
  graph["pikelpn_jax.ace.__main__"] = graph.pop("pikelpn_jax.ace.cli")
  assert cycles({a: list(bs) for a, bs in package_graph(graph).items()}) == []


def test_no_private_names_across_modules():
  found = private_offences()
  assert sorted(found - ALLOWED_PRIVATE) == []
  assert sorted(ALLOWED_PRIVATE - found) == [], "fixed: remove these from ALLOWED_PRIVATE"


def test_the_checks_catch_what_they_look_for(tmp_path):
  # A private import and a module-attribute access are both seen.
  p = tmp_path / "m.py"
  p.write_text(
    "from pikelpn_jax.export.helpers import _x\nfrom pikelpn_jax.models import bit_rules\n"
    "bit_rules._y()\n"
  )
  found = {priv for _, priv in imports("experiments.m", str(p)) if priv}
  assert found == {"pikelpn_jax.export.helpers._x", "pikelpn_jax.models.bit_rules._y"}


@pytest.mark.parametrize("root", ["pikelpn_jax", "experiments", "tests"])
def test_raw_equation_params_only_in_the_internals_module(root):
  pattern = re.compile(r"\b(eqn|e)\.params\b")
  offenders = []
  for dirpath, _, files in os.walk(os.path.join(REPO, root)):
    for f in files:
      path = os.path.join(dirpath, f)
      if f.endswith(".py") and path != os.path.join(REPO, "pikelpn_jax", "_jax_internals.py"):
        if path == os.path.abspath(__file__):
          continue
        for i, line in enumerate(open(path), 1):
          if pattern.search(line):
            offenders.append(f"{os.path.relpath(path, REPO)}:{i}")
  assert offenders == []
