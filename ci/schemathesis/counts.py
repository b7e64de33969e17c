"""Prints the test cases schemathesis ran, per operation and phase, from its NDJSON event reports.

Usage: python counts.py REPORT_DIR... ; exits 1 when a report is missing or records a failure.
"""

from __future__ import annotations

import glob
import json
import sys
from collections import Counter, defaultdict

PHASES = ("examples", "coverage", "fuzzing", "stateful")


def count(report: str) -> dict[str, Counter]:
    """Test cases per operation and phase of one NDJSON report."""
    per_operation: dict[str, Counter] = defaultdict(Counter)
    with open(report, encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is not None:
                recorder = finished["recorder"]
                phase = finished["phase"]
                for case in recorder.get("cases", {}).values():
                    value = case["value"]
                    label = recorder["label"] if phase != "stateful" else f"{value['method']} {value['path']}"
                    per_operation[label][phase] += 1
    return per_operation


def dropped_summary(report_dir: str) -> None:
    """Prints the failures hooks.py dropped as the contract's answers, by operation and reason."""
    try:
        with open(f"{report_dir}/dropped.ndjson", encoding="utf-8") as log:
            lines = [json.loads(line) for line in log]
    except FileNotFoundError:
        return
    reasons = Counter((line["operation"], line["failure"], line["status"], line["code"]) for line in lines)
    print("  dropped by hooks.py as answers the contract requires (operation, check, status, error.code):")
    for (operation, failure, status, code), times in sorted(reasons.items()):
        print(f"    {times:>5}  {operation:50} {failure} {status} {code}")


def main(report_dirs: list[str]) -> int:
    status = 0
    total = 0
    failed_total = 0
    failing_cases = 0
    for report_dir in report_dirs:
        reports = sorted(glob.glob(f"{report_dir}/ndjson-*.ndjson"))
        summaries = sorted(glob.glob(f"{report_dir}/json-*.json"))
        if not reports or not summaries:
            print(f"FAIL: no NDJSON or JSON report in {report_dir}")
            status = 1
            failed_total += 1
            continue
        per_operation = count(reports[-1])
        with open(summaries[-1], encoding="utf-8") as file:
            summary = json.load(file)
        print(f"\n{report_dir}: test cases per operation")
        print(f"  {'operation':58} " + " ".join(f"{phase:>9}" for phase in PHASES) + f" {'total':>7}")
        run_total = 0
        for label in sorted(per_operation, key=lambda label: label.split(" ", 1)[::-1]):
            counts = per_operation[label]
            row_total = sum(counts.values())
            run_total += row_total
            print(f"  {label:58} " + " ".join(f"{counts[phase]:>9}" for phase in PHASES) + f" {row_total:>7}")
        print(f"  {'all operations':58} {'':>39} {run_total:>7}")
        failures, errors = len(summary["failures"]), len(summary["errors"])
        failed_total += failures + errors
        failing_cases += summary["test_cases"]["with_failures"] + summary["test_cases"]["errored"]
        print(
            f"  schemathesis: {summary['test_cases']['generated']} generated, {failures} failures, "
            f"{errors} errors, {summary['filtered']} failures dropped by hooks.py, exit code {summary['exit_code']}"
        )
        dropped_summary(report_dir)
        total += run_total
        if failures or errors or summary["exit_code"] != 0:
            status = 1
    print(f"\ntest cases overall: {total}")
    # The plain closing line CI runners read: test cases without a failure, and failures.
    print(f"schemathesis: {total - failing_cases} passed, {failed_total} failed")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
