"""Container entry point: exec the app's command from /app/launch.json as PID 1.

The Dockerfiles are shared by every app, so the command is data: launch.json is written into
the build context by imagetools/images.py from dockerfiles/apps.toml. Arguments given to
`docker run IMAGE ...` are appended to the command. `exec` replaces this process, so the
server itself is PID 1 and receives SIGTERM from `docker stop`.
"""

import json
import os
import sys
from pathlib import Path

SPEC = Path(__file__).with_name("launch.json")


def main() -> None:
    spec = json.loads(SPEC.read_text())
    # The app's packages sit beside this file (/app); the venv holds only its dependencies.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{SPEC.parent}{os.pathsep}{path}" if path else str(SPEC.parent)
    for key, value in spec.get("env", {}).items():
        os.environ.setdefault(key, value)
    port = os.environ.setdefault("PORT", str(spec.get("port", "")))
    command = [part.replace("{port}", port) for part in spec["command"]] + sys.argv[1:]
    if command[0] == "python":
        command[0] = sys.executable
    os.execvp(command[0], command)  # noqa: S606 - exec is the point: the app becomes PID 1


if __name__ == "__main__":
    main()
