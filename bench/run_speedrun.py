"""Run speedrun.ipynb's cells in plain Python, for machines without papermill (the bare GPU machine).

    python bench/run_speedrun.py preset=smoke run=gpu-smoke overrides=dtype=bfloat16,compile=True

Does what `papermill -p name value` does, minus the executed copy of the notebook: runs the `parameters`
cell, then the given values (each converted to the type of the parameter's default), then every other code
cell in order, printing as it goes. A stage that fails raises, and this exits non-zero with its message.
"""
import json, sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "speedrun.ipynb"


def main(argv: list[str]) -> int:
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    scope = {"__name__": "__speedrun__"}
    exec(compile("".join(params["source"]), "parameters", "exec"), scope)
    for arg in argv:
        name, sep, value = arg.partition("=")
        if not sep or name not in scope: raise SystemExit(f"error: {arg!r}: give name=value with a parameter of speedrun.ipynb")
        default = scope[name]
        scope[name] = (value.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)(value)
    for i, cell in enumerate(c for c in cells if c is not params):
        exec(compile("".join(cell["source"]), f"speedrun.ipynb cell {i + 1}", "exec"), scope)
    return 0


if __name__ == "__main__":
    try: sys.exit(main(sys.argv[1:]))
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
