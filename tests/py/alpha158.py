"""The 158 Alpha158 features, taken from Qlib's own code (not retyped).

usage: alpha158.py [--check FIXTURE] [--import] [--qlib-dir DIR]

Prints `# dialect: qlib`, a short header and one `NAME = expression` line per feature,
in Qlib's syntax (`$close`, `Ref(...)`, `Mean(...)`, ...) and in Qlib's order, exactly
as `qlib.contrib.data.handler.Alpha158` configures its data loader:
`Alpha158DL.get_feature_config(conf)` with the `conf` dict written in
`Alpha158.get_feature_config` (kbar; price OPEN/HIGH/LOW/VWAP at window 0; rolling
with every operator and windows [5, 10, 20, 30, 60]).

Needs only the `pyqlib` wheel installed WITHOUT its dependencies
(`pip install --no-deps pyqlib==0.9.7`): importing `qlib` itself would pull in
ruamel.yaml, pydantic-settings, redis, mlflow, ... . Instead this script

  1. finds the installed package with `importlib.util.find_spec("qlib")` (which does
     not execute `qlib/__init__.py`),
  2. reads the `conf` literal out of `qlib/contrib/data/handler.py` with `ast`
     (no execution of that module),
  3. executes Qlib's real `qlib/contrib/data/loader.py` with its one import
     (`from qlib.data.dataset.loader import QlibDataLoader`) satisfied by a stub
     base class, and calls Qlib's `Alpha158DL.get_feature_config(conf)`.

`--qlib-dir DIR` (or env AF_QLIB_DIR) reads Qlib from DIR/qlib instead of the installed
package, e.g. after `pip install --no-deps --only-binary :all: --python-version 3.11
--platform manylinux2014_x86_64 --target DIR pyqlib==0.9.7` (works whatever the local
Python; the files read are pure Python).
`--import` instead imports `qlib.contrib.data.handler` for real (needs Qlib's
dependencies) and calls `Alpha158.get_feature_config`; the output must be the same.
`--check FIXTURE` compares the output with a saved file (e.g.
tools/af-expr/sets/alpha158.txt) and exits 1 if they differ.
"""
import ast
import importlib.metadata
import importlib.util
import os
import sys
import types

QLIB_VERSION = "0.9.7"
STUBS = ("qlib", "qlib.data", "qlib.data.dataset", "qlib.data.dataset.loader")


def qlib_dir(src=None):
    if src:
        root = os.path.join(src, "qlib")
        if not os.path.isfile(os.path.join(root, "contrib", "data", "loader.py")):
            sys.exit(f"alpha158.py: no qlib/contrib/data/loader.py under {src}")
        return root
    spec = importlib.util.find_spec("qlib")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"alpha158.py: Qlib is not installed; run `pip install --no-deps pyqlib=={QLIB_VERSION}`")
    return list(spec.submodule_search_locations)[0]


def handler_conf(handler_py):
    """The `conf = {...}` literal of `Alpha158.get_feature_config` in handler.py."""
    tree = ast.parse(open(handler_py, encoding="utf-8").read(), handler_py)
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name == "Alpha158":
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "get_feature_config":
                    for st in ast.walk(fn):
                        if (isinstance(st, ast.Assign) and len(st.targets) == 1
                                and isinstance(st.targets[0], ast.Name) and st.targets[0].id == "conf"):
                            return ast.literal_eval(st.value)
    sys.exit(f"alpha158.py: no `conf = {{...}}` in Alpha158.get_feature_config of {handler_py}")


def load_loader_module(loader_py):
    """Execute Qlib's contrib/data/loader.py with a stub for its single import."""
    saved = {n: sys.modules.get(n) for n in STUBS}
    try:
        for n in STUBS:
            m = types.ModuleType(n)
            m.__path__ = []  # a package, so the dotted import walks through it
            sys.modules[n] = m

        class QlibDataLoader:  # stand-in base class; never instantiated here
            def __init__(self, *args, **kwargs):
                raise RuntimeError("stub QlibDataLoader")

        sys.modules["qlib.data.dataset.loader"].QlibDataLoader = QlibDataLoader
        spec = importlib.util.spec_from_file_location("_qlib_contrib_data_loader", loader_py)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def dir_version(src):
    for d in sorted(os.listdir(src)):
        if d.startswith("pyqlib-") and d.endswith(".dist-info"):
            for line in open(os.path.join(src, d, "METADATA"), encoding="utf-8"):
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return "unknown"


def features(real_import=False, src=None):
    """(version, how, [(name, expression)]) from the installed Qlib (or from src)."""
    if src:
        version = dir_version(src)
    else:
        try:
            version = importlib.metadata.version("pyqlib")
        except importlib.metadata.PackageNotFoundError:
            sys.exit(f"alpha158.py: Qlib is not installed; run `pip install --no-deps pyqlib=={QLIB_VERSION}`")
    if real_import:
        from qlib.contrib.data.handler import Alpha158  # noqa: needs Qlib's dependencies

        fields, names = Alpha158.get_feature_config(None)  # does not use self
        how = "qlib.contrib.data.handler.Alpha158.get_feature_config() (real import)"
    else:
        root = qlib_dir(src)
        conf = handler_conf(os.path.join(root, "contrib", "data", "handler.py"))
        mod = load_loader_module(os.path.join(root, "contrib", "data", "loader.py"))
        fields, names = mod.Alpha158DL.get_feature_config(conf)
        # the handler's conf is also Alpha158DL's default config
        if mod.Alpha158DL.get_feature_config() != (fields, names):
            sys.exit("alpha158.py: Alpha158 handler conf and Alpha158DL default config disagree")
        how = ("qlib.contrib.data.loader.Alpha158DL.get_feature_config(conf), conf read from "
               "qlib/contrib/data/handler.py Alpha158.get_feature_config")
    if len(fields) != len(names) or len(set(names)) != len(names):
        sys.exit("alpha158.py: names and fields do not pair up")
    return version, how, list(zip(names, fields))


def render(version, how, feats):
    lines = [
        "# dialect: qlib",
        f"# Alpha158: the {len(feats)} features of Qlib (pyqlib {version}), in Qlib's syntax and order.",
        f"# Generated by tests/py/alpha158.py from Qlib's own code: {how}.",
        f"# Regenerate: pip install --no-deps pyqlib=={QLIB_VERSION}; python tests/py/alpha158.py > tools/af-expr/sets/alpha158.txt",
    ]
    lines += [f"{n} = {f}" for n, f in feats]
    return "\n".join(lines) + "\n"


def main(argv):
    real = "--import" in argv
    check = argv[argv.index("--check") + 1] if "--check" in argv else None
    src = argv[argv.index("--qlib-dir") + 1] if "--qlib-dir" in argv else os.environ.get("AF_QLIB_DIR")
    version, how, feats = features(real, src)
    if version != QLIB_VERSION:
        print(f"alpha158.py: warning: pyqlib {version} installed, the fixture is for {QLIB_VERSION}", file=sys.stderr)
    if len(feats) != 158:
        sys.exit(f"alpha158.py: Qlib gave {len(feats)} features, expected 158")
    text = render(version, how, feats)
    if check is None:
        sys.stdout.write(text)
        return 0
    saved = [l for l in open(check, encoding="utf-8").read().splitlines() if l and not l.startswith("#")]
    now = [l for l in text.splitlines() if l and not l.startswith("#")]
    if saved != now:
        for a, b in zip(saved + [""] * len(now), now + [""] * len(saved)):
            if a != b:
                print(f"differs: fixture {a!r} vs Qlib {b!r}")
                break
        print(f"alpha158 fixture {check} differs from Qlib {version}")
        return 1
    print(f"{len(now)} Alpha158 features of Qlib {version} match {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
