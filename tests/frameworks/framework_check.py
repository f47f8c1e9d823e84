"""Shared by the framework checks: runs `floodgate-sim botapi` with a scenario
on a free port for the length of a `with` block, and counts checks."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


class Simulator:
    """floodgate-sim botapi --scenario <scenario> --plain, on a free port."""

    def __init__(self, binary, scenario):
        self.binary = binary
        self.scenario = scenario
        self.folder = tempfile.TemporaryDirectory(prefix="floodgate-sim-")
        self.process = None
        self.port = None

    def __enter__(self):
        scenario_path = os.path.join(self.folder.name, "scenario.json")
        port_path = os.path.join(self.folder.name, "port")
        with open(scenario_path, "w") as out:
            json.dump(self.scenario, out)
        self.process = subprocess.Popen(
            [self.binary, "botapi", "--plain", "--scenario", scenario_path, "--port-out", port_path],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while not os.path.exists(port_path):
            if self.process.poll() is not None:
                raise RuntimeError("floodgate-sim exited: " + self.process.stdout.read())
            if time.monotonic() > deadline:
                raise RuntimeError("floodgate-sim did not start listening")
            time.sleep(0.02)
        with open(port_path) as port_file:
            self.port = int(port_file.read())
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=20)
        sys.stdout.write(output)
        self.folder.cleanup()
        return False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


class Checks:
    """Records named checks; `report` prints them and returns the exit code."""

    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
        else:
            self.failures.append(f"{name} {detail}".strip())

    def expect_error(self, name, call, error_type, text):
        """`call` must raise `error_type` whose message contains `text`."""
        try:
            call()
        except error_type as e:
            self.check(name, text in str(e), f"(got {type(e).__name__}: {e})")
            return e
        except Exception as e:  # a different error is a failed check, not a crash
            self.check(name, False, f"(got {type(e).__name__}: {e})")
            return None
        self.check(name, False, "(no error)")
        return None

    def report(self):
        for failure in self.failures:
            print("FAILED:", failure)
        print(f"{self.passed} passed, {len(self.failures)} failed")
        return 0 if not self.failures and self.passed > 0 else 1
