"""The runnable example of docs/acev2.md ("Pricing any JAX function") runs as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pricing_any_jax_function_example_runs(capsys):
  with open(os.path.join(ROOT, "docs", "acev2.md")) as f:
    doc = f.read()
  section = doc.split("## Pricing any JAX function", 1)[1].split("\n## ", 1)[0]
  (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
  exec(compile(code, "docs/acev2.md", "exec"), {})
  out = capsys.readouterr().out
  assert "ACEv2 350.656k" in out and "model 2.536kB" in out and "mac 7x8" in out
