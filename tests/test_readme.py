"""The README's quick start is what CI runs: keep the two in step."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands_main_job_then_tests():
    commands = _quick_start_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "hvitgan-tf train" in main_job and "hvitgan-tf sample" in main_job
    assert main_job.index("hvitgan-tf train") < main_job.index("hvitgan-tf sample")
    assert tests.rstrip().endswith("pytest")


def test_ci_runs_the_readme_test_command():
    _, tests = _quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r"pip install (-e \S+)", tests).group(1)
    assert f"pip install --quiet {install}" in ci
    assert re.search(r"^pytest$", ci, flags=re.M)
    assert "python3 -m venv .venv" in tests and "python3 -m venv .venv" in ci
