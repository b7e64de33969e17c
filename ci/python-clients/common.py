"""What both client scenarios share: arguments, the tenant config, and the check counter.

Only the standard library: the scenarios themselves talk to the server through their generated
client alone.
"""

from __future__ import annotations

import os
import secrets
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn


def arguments() -> tuple[str, str]:
    """Base URL and admin token: `scenario.py BASE_URL ADMIN_TOKEN`, or FUNCTIONARY_BASE_URL and
    FUNCTIONARY_ADMIN_TOKEN in the environment."""
    args = sys.argv[1:]
    base_url = args[0] if len(args) > 0 else os.environ.get("FUNCTIONARY_BASE_URL", "")
    admin_token = args[1] if len(args) > 1 else os.environ.get("FUNCTIONARY_ADMIN_TOKEN", "")
    if not base_url or not admin_token:
        print(
            f"usage: {sys.argv[0]} BASE_URL ADMIN_TOKEN (or FUNCTIONARY_BASE_URL and FUNCTIONARY_ADMIN_TOKEN)",
            file=sys.stderr,
        )
        sys.exit(2)
    return base_url.rstrip("/"), admin_token


def unique_slug(prefix: str) -> str:
    """A tenant slug no earlier run used: ^[a-z0-9][a-z0-9-]{0,62}$."""
    return f"{prefix}-{secrets.token_hex(4)}"


def tenant_config(slug: str) -> str:
    """The tenant config (YAML text) both scenarios upload."""
    return f"""\
tenant: {slug}
displayName: Python client CI ({slug})
models:
  - name: organization
    schema:
      type: object
      properties:
        plan: {{type: string, enum: [free, pro, enterprise]}}
  - name: customer
    parents: [organization]
    schema:
      type: object
      properties:
        email: {{type: string, format: email}}
events:
  - name: sign_up
    forModels: [customer]
    schema: {{type: object, properties: {{plan: {{type: string}}}}}}
"""


class CheckFailed(Exception):
    pass


class Checks:
    """Counts checked steps and prints one line per step; the first failed step ends the run."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.passed = 0

    def check(self, step: str, condition: bool, detail: Any = None) -> None:
        if not condition:
            raise CheckFailed(f"{step}\n    got: {detail!r}")
        self.passed += 1
        print(f"  ok {self.passed:2d}  {step}", flush=True)

    def fail(self, step: str, detail: Any) -> NoReturn:
        raise CheckFailed(f"{step}\n    got: {detail!r}")

    def run(self, scenario: Callable[[Checks], None]) -> None:
        print(f"python client ({self.label})", flush=True)
        try:
            scenario(self)
        except CheckFailed as failure:
            print(f"FAIL ({self.label}) after {self.passed} checks passed: {failure}", flush=True)
            sys.exit(1)
        except Exception:  # an exception from the generated client is a failure too
            print(
                f"FAIL ({self.label}) after {self.passed} checks passed: unexpected exception",
                flush=True,
            )
            traceback.print_exc(file=sys.stdout)
            sys.exit(1)
        print(f"python client ({self.label}): {self.passed} checks passed", flush=True)
