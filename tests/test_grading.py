"""The grading switch: against the untouched stubs in exercises/ every exercise test fails, so no exercise test is
vacuous. That every one passes against solutions/ is the main run's job (`make test` grades solutions: running them
again here cost CI half a minute and proved nothing new)."""
import subprocess, sys, xml.etree.ElementTree as ET

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_exercise_tests(grade, tmp_path):
    report = tmp_path / f"{grade}.xml"
    subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests" / "exercises"), "--grade", grade, "-q",
                    "-p", "no:cacheprovider", f"--junitxml={report}"], cwd=REPO, capture_output=True, text=True)
    cases = ET.parse(report).getroot().iter("testcase")
    return {f"{c.get('classname')}.{c.get('name')}": not any(child.tag in ("failure", "error", "skipped") for child in c) for c in cases}


def test_every_stub_fails(tmp_path):
    results = run_exercise_tests("exercises", tmp_path)
    assert results, "no exercise tests were collected"
    passing = [name for name, passed in results.items() if passed]
    assert not passing, f"these exercise tests pass against the untouched stubs, so they grade nothing: {passing}"


def test_exercises_and_solutions_mirror_each_other():
    files = lambda root: sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    assert files(REPO / "exercises") == files(REPO / "solutions")
